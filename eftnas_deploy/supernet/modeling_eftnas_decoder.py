"""Dense decoder LLMs (Llama, Qwen2) cut from an EFTNAS super-network, with per-layer shapes.

Self-contained (imports only torch and transformers): the toolkit copies it beside the weights of a sliced
decoder and points `auto_map` at it, so `AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)`
loads it with stock transformers. `config.eftnas_subnet` holds, per layer, the KV groups kept (`heads`: one
K/V head with its query heads) and the MLP width (`ffn`); 0 drops that block's residual branch and pre-norm.
Layers that drop both blocks are not built at all: `config.eftnas_layers` lists the parent layers the dense
model keeps (`num_hidden_layers` of them). `num_key_value_heads`/`num_attention_heads` are the largest kept
layer's; the group size and `head_dim` are the parent's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.models.llama.modeling_llama import LlamaForCausalLM
from transformers.models.qwen2.modeling_qwen2 import Qwen2ForCausalLM


def keep_cache_length(cache: Any, layer_idx: int, hidden_states: torch.Tensor, cache_position: Any) -> None:
    """Record a skipped attention block's tokens in the KV cache (one zero-width-1 head per token).

    HF reads sequence lengths and mask sizes from the cache's layers (layer 0 first); a layer that kept no
    K/V would report 0 cached tokens and break positions and masks during `generate`.
    """
    if cache is None:
        return
    marker = hidden_states.new_zeros(hidden_states.shape[0], 1, hidden_states.shape[1], 1)
    cache.update(marker, marker, layer_idx, {"cache_position": cache_position})


class SkippedDecoderAttention(nn.Module):
    """A dropped attention block: contributes nothing to the residual stream (its pre-norm is an Identity)."""

    def __init__(self, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
        keep_cache_length(kwargs.get("past_key_values"), self.layer_idx, hidden_states, kwargs.get("cache_position"))
        return torch.zeros_like(hidden_states), None


class SkippedMlp(nn.Module):
    """A dropped MLP block."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(hidden_states)


def _resized(linear: nn.Linear, rows: int | None = None, cols: int | None = None) -> nn.Linear:
    return nn.Linear(
        cols if cols is not None else linear.in_features,
        rows if rows is not None else linear.out_features,
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )


def shape_decoder_layers(layers: nn.ModuleList, config: Any) -> None:
    """Give each layer the shapes of `config.eftnas_subnet` (weights are loaded afterwards)."""
    subnet, parent = config.eftnas_subnet, config.eftnas_parent
    head_dim = parent["head_dim"]
    group_size = parent["num_heads"] // parent["num_kv_heads"]
    kept = getattr(config, "eftnas_layers", None) or list(range(len(layers)))
    for j, layer in enumerate(layers):
        groups, width = subnet["heads"][kept[j]], subnet["ffn"][kept[j]]
        if groups == 0:
            layer.self_attn, layer.input_layernorm = SkippedDecoderAttention(j), nn.Identity()
        else:
            attn, q_width, kv_width = layer.self_attn, groups * group_size * head_dim, groups * head_dim
            attn.q_proj = _resized(attn.q_proj, rows=q_width)
            attn.k_proj = _resized(attn.k_proj, rows=kv_width)
            attn.v_proj = _resized(attn.v_proj, rows=kv_width)
            attn.o_proj = _resized(attn.o_proj, cols=q_width)
        if width == 0:
            layer.mlp, layer.post_attention_layernorm = SkippedMlp(), nn.Identity()
        else:
            mlp = layer.mlp
            mlp.gate_proj = _resized(mlp.gate_proj, rows=width)
            mlp.up_proj = _resized(mlp.up_proj, rows=width)
            mlp.down_proj = _resized(mlp.down_proj, cols=width)


class EftnasLlamaForCausalLM(LlamaForCausalLM):
    """A Llama causal LM whose layers keep their own numbers of KV groups and MLP neurons."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        shape_decoder_layers(self.model.layers, config)


class EftnasQwen2ForCausalLM(Qwen2ForCausalLM):
    """A Qwen2 causal LM whose layers keep their own numbers of KV groups and MLP neurons."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        shape_decoder_layers(self.model.layers, config)
