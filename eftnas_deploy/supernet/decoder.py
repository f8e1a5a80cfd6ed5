"""Elastic decoder LLMs (Llama/Qwen2 families): per layer a prefix of KV groups and MLP neurons, or a skip.

`DecoderSuperNetwork` swaps each decoder layer for an `ElasticDecoderLayer` that keeps the original children
(same parameter names and state dict) and slices their weights at forward, so gradients reach the shared
tensors. Attention runs the model's own attention function (eager/sdpa) on the sliced Q/K/V, after the
model's rotary embedding (the `position_embeddings` the HF model computes once per forward) and the KV-cache
update of its layer index, so masks, positions and `generate` work as in the stock model.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import cache
from typing import Any

import torch
import transformers
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from eftnas_deploy.core.decoder_family import DecoderFamilySpec, DecoderGeometry, get_decoder_family
from eftnas_deploy.core.errors import EftnasError, SearchSpaceError, SubnetConfigError
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.families.models import get_submodule
from eftnas_deploy.supernet.elastic import sliced_linear
from eftnas_deploy.supernet.modeling_eftnas_decoder import keep_cache_length
from eftnas_deploy.supernet.switchable import Switchable


@cache
def decoder_class(name: str) -> type[PreTrainedModel]:
    return getattr(transformers, name)


def build_decoder(model_type: str = "llama", **config_kwargs: Any) -> PreTrainedModel:
    """A randomly initialised causal LM of a decoder family (geometry fields may use normalized names)."""
    spec = get_decoder_family(model_type)
    config = decoder_class(spec.config_class)(**spec.config_kwargs(**config_kwargs))
    return decoder_class(spec.model_class)(config)


def decoder_spec(model: PreTrainedModel) -> DecoderFamilySpec:
    return get_decoder_family(model.config.model_type)


def decoder_layers(model: PreTrainedModel) -> nn.ModuleList:
    return get_submodule(model, decoder_spec(model).layers)


class ElasticDecoderLayer(GradientCheckpointingLayer):
    """Drop-in replacement for a Llama/Qwen2 decoder layer running `active` KV groups and MLP neurons."""

    def __init__(self, layer: nn.Module, spec: DecoderFamilySpec, geometry: DecoderGeometry) -> None:
        super().__init__()
        for name, child in layer.named_children():
            self.add_module(name, child)
        if hasattr(layer, "attention_type"):  # Qwen2: which causal mask (full / sliding) the model hands it
            self.attention_type = layer.attention_type
        self.spec, self.geometry = spec, geometry
        self.layer_idx: int = self.attn.layer_idx
        module = sys.modules[type(self.attn).__module__]
        self._rotary, self._eager = module.apply_rotary_pos_emb, module.eager_attention_forward
        self.active = {"heads": geometry.num_kv_heads, "ffn": geometry.intermediate_size}

    @property
    def attn(self) -> nn.Module:
        """The HF attention module (its config, scaling, layer index and sliding window are used as they are)."""
        return get_submodule(self, self.spec.attention.module)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        use_cache: bool | None = False,
        cache_position: torch.LongTensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        if self.active["heads"] > 0:
            x = get_submodule(self, self.spec.attention.norm)(hidden_states)
            attn_kwargs = dict(kwargs, position_ids=position_ids, use_cache=use_cache)
            y = self._attention(x, position_embeddings, attention_mask, past_key_values, cache_position, attn_kwargs)
            hidden_states = hidden_states + y
        else:
            keep_cache_length(past_key_values, self.layer_idx, hidden_states, cache_position)
        if self.active["ffn"] > 0:
            hidden_states = hidden_states + self._mlp(get_submodule(self, self.spec.mlp.norm)(hidden_states))
        return hidden_states

    def _attention(
        self,
        x: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None,
        past_key_values: Any,
        cache_position: torch.LongTensor | None,
        kwargs: dict[str, Any],
    ) -> torch.Tensor:
        layout, attn, g = self.spec.attention, self.attn, self.geometry
        q_width = self.active["heads"] * g.group_size * g.head_dim
        kv_width = self.active["heads"] * g.head_dim
        shape = (*x.shape[:-1], -1, g.head_dim)

        def project(path: str, rows: int) -> torch.Tensor:
            return sliced_linear(get_submodule(self, path), x, rows=rows).view(shape).transpose(1, 2)

        query, key, value = (
            project(layout.query, q_width),
            project(layout.key, kv_width),
            project(layout.value, kv_width),
        )
        cos, sin = position_embeddings
        query, key = self._rotary(query, key, cos, sin)
        if past_key_values is not None:
            cache_kwargs = {"sin": sin, "cos": cos, "cache_position": cache_position}
            key, value = past_key_values.update(key, value, self.layer_idx, cache_kwargs)
        implementation = attn.config._attn_implementation
        interface = self._eager if implementation == "eager" else ALL_ATTENTION_FUNCTIONS[implementation]
        if getattr(attn, "sliding_window", None) is not None:
            kwargs["sliding_window"] = attn.sliding_window
        context, _ = interface(
            attn,
            query,
            key,
            value,
            attention_mask,
            dropout=attn.attention_dropout if self.training else 0.0,
            scaling=attn.scaling,
            **kwargs,
        )
        context = context.reshape(*x.shape[:-1], -1).contiguous()
        return sliced_linear(get_submodule(self, layout.output), context, cols=q_width)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        layout, width = self.spec.mlp, self.active["ffn"]
        act = get_submodule(self, layout.module).act_fn
        gate = sliced_linear(get_submodule(self, layout.gate), x, rows=width)
        up = sliced_linear(get_submodule(self, layout.up), x, rows=width)
        return sliced_linear(get_submodule(self, layout.down), act(gate) * up, cols=width)


class DecoderSuperNetwork(Switchable):
    """Controls which sub-network of a (converted in place) HF causal LM is active; `.model` stays an HF model."""

    objective = "causal-lm"  # how the super-network trainer distils it (`training.distill.OBJECTIVES`)

    def __init__(self, model: PreTrainedModel) -> None:
        if getattr(model.config, "eftnas_subnet", None):
            raise EftnasError("model: this is an already sliced sub-network, not a super-network")
        spec = decoder_spec(model)
        self.model, self.spec = model, spec
        self.geometry = DecoderGeometry.from_config(model.config)
        layers = decoder_layers(model)
        for i, layer in enumerate(layers):
            if not isinstance(layer, ElasticDecoderLayer):
                layers[i] = ElasticDecoderLayer(layer, spec, self.geometry).train(layer.training)
        self._active = self.geometry.full_subnet()

    @property
    def layers(self) -> list[ElasticDecoderLayer]:
        return list(decoder_layers(self.model))

    def set_subnet(self, subnet: SubnetConfig) -> None:
        """Make `subnet` (heads = KV groups, ffn = MLP neurons, per layer) the active sub-network."""
        self.geometry.validate(subnet)
        for layer, groups, width in zip(self.layers, subnet.heads, subnet.ffn):
            layer.active = {"heads": int(groups), "ffn": int(width)}
        self._active = subnet

    def full(self) -> SubnetConfig:
        return self.geometry.full_subnet()

    def validate_space(self, space: SearchSpace) -> SearchSpace:
        """Raise SearchSpaceError unless every sub-network of `space` fits (heads = KV groups, ffn = MLP neurons)."""
        if set(space.dimensions) != {"heads", "ffn"}:
            raise SearchSpaceError(f"search space: decoders take heads and ffn, got {list(space.dimensions)}")
        try:
            self.geometry.validate(space.largest())
        except SubnetConfigError as error:
            raise SearchSpaceError(str(error)) from None
        return space


# --- function-preserving reordering ---------------------------------------------------------------------


def _unit_index(order: torch.Tensor, unit: int) -> torch.Tensor:
    return (order[:, None] * unit + torch.arange(unit)).reshape(-1)


def _check_order(order: Sequence[int] | torch.Tensor, size: int, what: str, layer: int) -> torch.Tensor:
    index = torch.as_tensor(order, dtype=torch.long)
    if index.ndim != 1 or index.numel() != size or not torch.equal(index.sort().values, torch.arange(size)):
        raise EftnasError(f"layer {layer}: {what} order must be a permutation of 0..{size - 1}")
    return index


def decoder_unit_groups(model: PreTrainedModel, dim: str, layer: int) -> list[tuple[nn.Linear, int, int]]:
    """(linear, axis, entries per unit) of one layer's units: KV groups ("heads") or MLP neurons ("ffn")."""
    spec, g = decoder_spec(model), DecoderGeometry.from_config(model.config)
    block = decoder_layers(model)[layer]
    if dim == "heads":
        a, q_unit = spec.attention, g.group_size * g.head_dim
        rows = [(a.query, 0, q_unit), (a.key, 0, g.head_dim), (a.value, 0, g.head_dim), (a.output, 1, q_unit)]
    elif dim == "ffn":
        rows = [(p, 0, 1) for p in spec.mlp.rows] + [(p, 1, 1) for p in spec.mlp.columns]
    else:
        raise EftnasError(f"dimension: {dim!r} is not elastic in decoders (heads, ffn)")
    return [(get_submodule(block, path), axis, unit) for path, axis, unit in rows]


@torch.no_grad()
def permute_decoder_units(model: PreTrainedModel, dim: str, layer: int, order: Sequence[int] | torch.Tensor) -> None:
    """Reorder one layer's KV groups (with their query heads) or MLP neurons: new unit j is old order[j].

    Rotary embeddings act on each head alone and every query head keeps its own K/V head, so the function
    of the model is unchanged.
    """
    g = DecoderGeometry.from_config(model.config)
    size = g.num_kv_heads if dim == "heads" else g.intermediate_size
    index = _check_order(order, size, "KV group" if dim == "heads" else "MLP neuron", layer)
    for linear, axis, unit in decoder_unit_groups(model, dim, layer):
        rows = _unit_index(index, unit)
        if axis == 0:
            linear.weight.copy_(linear.weight[rows])
            if linear.bias is not None:
                linear.bias.copy_(linear.bias[rows])
        else:
            linear.weight.copy_(linear.weight[:, rows])
