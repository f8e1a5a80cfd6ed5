"""Elastic super-network: a real HF encoder (any registered family) whose layers run a prefix of heads and FFN neurons.

Weights are sliced at forward time (no masking), so a small sub-network costs less compute and
gradients flow into the shared full tensors. A skipped block (0 heads or 0 FFN width) is bypassed:
the block, including its residual LayerNorm, becomes the identity, exactly like the sliced model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.family import FamilySpec, get_family
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.families.models import encoder_layers, family_of, get_submodule, load_pretrained, task_of
from eftnas_deploy.supernet.dims import HANDLERS
from eftnas_deploy.supernet.switchable import Switchable


def sliced_linear(linear: nn.Module, x: torch.Tensor, rows: int | None = None, cols: int | None = None) -> torch.Tensor:
    """`linear` on its first `rows` outputs and first `cols` inputs (None: all).

    A module with its own `sliced_forward` (an elastic LoRA layer, `eftnas_deploy.lora`) slices itself, so
    its adapter update is sliced with the base weight instead of being skipped.
    """
    own = getattr(linear, "sliced_forward", None)
    if own is not None:
        return own(x, rows, cols)
    weight, bias = linear.weight, linear.bias
    if rows is not None:
        weight, bias = weight[:rows], None if bias is None else bias[:rows]
    if cols is not None:
        weight = weight[:, :cols]
    return F.linear(x, weight, bias)


class ElasticEncoderLayer(GradientCheckpointingLayer):
    """Drop-in replacement for a family's encoder layer with an active prefix of heads and FFN neurons.

    It keeps the original layer's children under their names, so parameter names and the state dict are
    those of the HF model; the family's layouts say which modules form the attention and FFN blocks.
    """

    def __init__(self, layer: nn.Module, head_dim: int, family: FamilySpec | None = None) -> None:
        super().__init__()
        self.family = family or get_family("bert")
        for name, child in layer.named_children():
            self.add_module(name, child)
        self.head_dim = head_dim
        attention, ffn = self.family.attention, self.family.ffn
        self.max_heads = get_submodule(self, attention.query).out_features // head_dim
        self.max_ffn = get_submodule(self, ffn.up).out_features
        self.active = {"heads": self.max_heads, "ffn": self.max_ffn}

    @property
    def active_heads(self) -> int:
        return self.active["heads"]

    @property
    def active_ffn(self) -> int:
        return self.active["ffn"]

    def set_active(self, heads: int, ffn: int) -> None:
        self.active = {"heads": heads, "ffn": ffn}

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor]:
        if attention_mask is not None and attention_mask.dim() == 2:
            # DistilBERT (eager, or with a head mask) hands its blocks the [batch, keys] 1/0 padding mask.
            attention_mask = (attention_mask != 0)[:, None, None, :]
        if self.active["heads"] > 0:
            hidden_states = self._attention(hidden_states, attention_mask)
        if self.active["ffn"] > 0:
            hidden_states = self._feed_forward(hidden_states)
        return (hidden_states,)

    def _module(self, path: str | None) -> Any:
        return None if path is None else get_submodule(self, path)

    def _attention(self, x: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        layout = self.family.attention
        heads = self.active["heads"]
        width = heads * self.head_dim
        batch, seq, _ = x.shape

        def project(path: str) -> torch.Tensor:
            y = sliced_linear(self._module(path), x, rows=width)
            return y.view(batch, seq, heads, self.head_dim).transpose(1, 2)

        attn_dropout = self._module(layout.attention_dropout)
        context = F.scaled_dot_product_attention(
            project(layout.query),
            project(layout.key),
            project(layout.value),
            attn_mask=attention_mask,
            dropout_p=attn_dropout.p if self.training and attn_dropout is not None else 0.0,
        )
        context = context.transpose(1, 2).reshape(batch, seq, width)
        y = sliced_linear(self._module(layout.output), context, cols=width)
        dropout = self._module(layout.output_dropout)
        if dropout is not None:
            y = dropout(y)
        return self._module(layout.layer_norm)(y + x)

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        layout = self.family.ffn
        width = self.active["ffn"]
        h = self._module(layout.activation)(sliced_linear(self._module(layout.up), x, rows=width))
        y = sliced_linear(self._module(layout.down), h, cols=width)
        dropout = self._module(layout.dropout)
        if dropout is not None:
            y = dropout(y)
        return self._module(layout.layer_norm)(y + x)


class SuperNetwork(Switchable):
    """Controls which sub-network of a (converted in place) HF model is active.

    `supernet.model` stays a normal HF model: save it, train it with Trainer, wrap it in DDP.
    """

    def __init__(self, model: PreTrainedModel) -> None:
        task = task_of(model)
        self.model = model
        self.geometry = ModelGeometry.from_config(model.config, task=task)
        if getattr(model.config, "eftnas_subnet", None):
            raise EftnasError("model: this is an already sliced sub-network, not a super-network")
        family = family_of(model)
        layers = encoder_layers(model)
        for i, layer in enumerate(layers):
            if not isinstance(layer, ElasticEncoderLayer):
                layers[i] = ElasticEncoderLayer(layer, self.geometry.head_dim, family).train(layer.training)
        self._active = SubnetConfig.full(self.geometry)

    @property
    def layers(self) -> list[ElasticEncoderLayer]:
        return list(encoder_layers(self.model))

    def set_subnet(self, subnet: SubnetConfig) -> None:
        """Make `subnet` the active sub-network (validated against the model)."""
        subnet.validate(self.geometry)
        for i, layer in enumerate(self.layers):
            layer.active = {name: int(handler.active(subnet)[i]) for name, handler in HANDLERS.items()}
        self._active = subnet

    def full(self) -> SubnetConfig:
        return SubnetConfig.full(self.geometry)

    def save_pretrained(self, directory: str, **kwargs: Any) -> None:
        """Save the full shared weights as a plain HF model directory."""
        self.model.save_pretrained(directory, **kwargs)

    @classmethod
    def from_pretrained(cls, directory: str, task: str = "text-classification", **kwargs: Any) -> SuperNetwork:
        kwargs.setdefault("what", "supernet")
        return cls(load_pretrained(directory, task=task, strict_task=True, **kwargs))
