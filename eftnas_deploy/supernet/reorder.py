"""Function-preserving permutations of attention heads and FFN neurons."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import PreTrainedModel

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.families.models import encoder_layers


def _check_order(order: Sequence[int] | torch.Tensor, size: int, what: str, layer: int) -> torch.Tensor:
    index = torch.as_tensor(order, dtype=torch.long)
    if index.ndim != 1 or index.numel() != size or not torch.equal(index.sort().values, torch.arange(size)):
        raise EftnasError(f"layer {layer}: {what} order must be a permutation of 0..{size - 1}")
    return index


@torch.no_grad()
def _permute_rows(linear: nn.Linear, index: torch.Tensor) -> None:
    linear.weight.copy_(linear.weight[index])
    if linear.bias is not None:
        linear.bias.copy_(linear.bias[index])


@torch.no_grad()
def _permute_columns(linear: nn.Linear, index: torch.Tensor) -> None:
    linear.weight.copy_(linear.weight[:, index])


def permute_heads(model: PreTrainedModel, layer: int, order: Sequence[int] | torch.Tensor) -> None:
    """Reorder a layer's heads so that new head j is old head order[j] (in place)."""
    block = encoder_layers(model)[layer]
    attn = block.attention.self
    num_heads = model.config.num_attention_heads
    head_dim = model.config.hidden_size // num_heads
    heads = _check_order(order, num_heads, "head", layer)
    rows = (heads[:, None] * head_dim + torch.arange(head_dim)).reshape(-1)
    for linear in (attn.query, attn.key, attn.value):
        _permute_rows(linear, rows)
    _permute_columns(block.attention.output.dense, rows)


def permute_ffn(model: PreTrainedModel, layer: int, order: Sequence[int] | torch.Tensor) -> None:
    """Reorder a layer's FFN neurons so that new neuron j is old neuron order[j] (in place)."""
    block = encoder_layers(model)[layer]
    neurons = _check_order(order, block.intermediate.dense.out_features, "FFN neuron", layer)
    _permute_rows(block.intermediate.dense, neurons)
    _permute_columns(block.output.dense, neurons)
