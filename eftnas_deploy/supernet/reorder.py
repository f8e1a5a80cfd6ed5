"""Function-preserving permutations of the units of an elastic dimension (attention heads, FFN neurons)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.families.models import encoder_layers, family_of, task_of
from eftnas_deploy.supernet.dims import HANDLERS

UNIT_NAMES = {"heads": "head", "ffn": "FFN neuron"}


def _check_order(order: Sequence[int] | torch.Tensor, size: int, what: str, layer: int) -> torch.Tensor:
    index = torch.as_tensor(order, dtype=torch.long)
    if index.ndim != 1 or index.numel() != size or not torch.equal(index.sort().values, torch.arange(size)):
        raise EftnasError(f"layer {layer}: {what} order must be a permutation of 0..{size - 1}")
    return index


def permute_units(model: PreTrainedModel, dim: str, layer: int, order: Sequence[int] | torch.Tensor) -> None:
    """Reorder one layer's units of dimension `dim` so that new unit j is old unit order[j] (in place)."""
    handler = HANDLERS[dim]
    geometry = ModelGeometry.from_config(model.config, task=task_of(model))
    index = _check_order(order, handler.size(geometry), UNIT_NAMES.get(dim, dim), layer)
    handler.permute(encoder_layers(model)[layer], family_of(model), geometry, index)


def permute_heads(model: PreTrainedModel, layer: int, order: Sequence[int] | torch.Tensor) -> None:
    """Reorder a layer's heads so that new head j is old head order[j] (in place)."""
    permute_units(model, "heads", layer, order)


def permute_ffn(model: PreTrainedModel, layer: int, order: Sequence[int] | torch.Tensor) -> None:
    """Reorder a layer's FFN neurons so that new neuron j is old neuron order[j] (in place)."""
    permute_units(model, "ffn", layer, order)
