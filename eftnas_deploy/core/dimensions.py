"""Registry of elastic dimensions: what a sub-network chooses per layer.

A dimension declares its bounds (the geometry field holding its largest value), how it costs
(MACs and parameters of one layer's block) and the LUT block kind that times it. How it slices
and reorders weights lives with the torch code (`eftnas_deploy.supernet`), keyed by the same name.
`SubnetConfig` and `SearchSpace` hold one per-layer tuple per registered dimension, in registry order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eftnas_deploy.core.errors import EftnasError

if TYPE_CHECKING:
    from eftnas_deploy.core.geometry import ModelGeometry


@dataclass(frozen=True)
class Dimension:
    """One elastic dimension; 0 in a layer skips that dimension's block when `zero_skips`."""

    name: str  # key in SubnetConfig/SearchSpace JSON and in search parameter names
    phrase: str  # how error messages state one value: "{} heads", "FFN width {}"
    max_field: str  # ModelGeometry field with the largest allowed value
    block: str | None  # latency-LUT block kind that times it (None: free at inference, e.g. merged adapters)
    macs: Callable[[int, ModelGeometry, int], int]  # (value, geometry, seq_len) -> MACs of one layer's block
    params: Callable[[int, ModelGeometry], int]  # (value, geometry) -> parameters of one layer's block
    required: bool = True  # must every sub-network of a model state it?
    zero_skips: bool = True

    def describe(self, value: int) -> str:
        return self.phrase.format(value)

    def max_value(self, geometry: ModelGeometry) -> int:
        return int(getattr(geometry, self.max_field))


_REGISTRY: dict[str, Dimension] = {}


def register_dimension(dimension: Dimension) -> Dimension:
    """Add a dimension (once); SubnetConfig and SearchSpace accept its name from then on."""
    if dimension.name in _REGISTRY and _REGISTRY[dimension.name] != dimension:
        raise EftnasError(f"dimension: {dimension.name!r} is already registered")
    _REGISTRY[dimension.name] = dimension
    return dimension


def dimension(name: str) -> Dimension:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise EftnasError(f"dimension: {name!r} is not one of {list(_REGISTRY)}") from None


def dimension_names() -> tuple[str, ...]:
    """Registered dimension names, in registry order."""
    return tuple(_REGISTRY)


def required_names() -> tuple[str, ...]:
    return tuple(name for name, dim in _REGISTRY.items() if dim.required)


def _attention_macs(heads: int, geometry: ModelGeometry, seq_len: int) -> int:
    """Q/K/V/output projections plus score and context matmuls, one sequence."""
    width = heads * geometry.head_dim
    return 4 * seq_len * geometry.hidden_size * width + 2 * seq_len * seq_len * width


def _attention_params(heads: int, geometry: ModelGeometry) -> int:
    """Q/K/V/output weights and biases plus the block's LayerNorm (none when skipped)."""
    h, width = geometry.hidden_size, heads * geometry.head_dim
    return 4 * h * width + 3 * width + h + 2 * h if heads else 0


def _ffn_macs(width: int, geometry: ModelGeometry, seq_len: int) -> int:
    return 2 * seq_len * geometry.hidden_size * width


def _ffn_params(width: int, geometry: ModelGeometry) -> int:
    h = geometry.hidden_size
    return 2 * h * width + width + h + 2 * h if width else 0


HEADS = register_dimension(
    Dimension("heads", "{} heads", "num_heads", "attention", macs=_attention_macs, params=_attention_params)
)
FFN = register_dimension(
    Dimension("ffn", "FFN width {}", "intermediate_size", "ffn", macs=_ffn_macs, params=_ffn_params)
)


# Elastic LoRA ranks (LoNAS / Shears NLS, `eftnas_deploy.lora`). One dimension per projection group, as in
# Shears' `[[Q, K, V], [Up], [Down]]` dependency groups: Q, K and V of a layer share one rank (they see the
# same input), FFN up and FFN down each have their own, so a search can spend rank where it helps. The
# adapters are merged into the base weights for deployment, so they cost no MACs and no LUT block
# (`block=None`); `params` counts the trainable adapter parameters of the chosen ranks. The bound checked
# against the geometry is `hidden_size`, the smallest side of every targeted projection (a larger rank
# cannot add expressiveness); the adapter's own maximum rank is checked by `ElasticLoRA`. Rank 0 drops
# the group's adapters in that layer. Optional: a sub-network that omits them is the base model.


def _lora_macs(rank: int, geometry: ModelGeometry, seq_len: int) -> int:
    return 0


def _lora_qkv_params(rank: int, geometry: ModelGeometry) -> int:
    return 3 * rank * 2 * geometry.hidden_size  # A: rank x hidden, B: hidden x rank, for each of Q, K, V


def _lora_ffn_params(rank: int, geometry: ModelGeometry) -> int:
    return rank * (geometry.hidden_size + geometry.intermediate_size)  # up or down projection


LORA_QKV = register_dimension(
    Dimension("lora_qkv", "Q/K/V LoRA rank {}", "hidden_size", None, _lora_macs, _lora_qkv_params, required=False)
)
LORA_UP = register_dimension(
    Dimension("lora_up", "FFN-up LoRA rank {}", "hidden_size", None, _lora_macs, _lora_ffn_params, required=False)
)
LORA_DOWN = register_dimension(
    Dimension("lora_down", "FFN-down LoRA rank {}", "hidden_size", None, _lora_macs, _lora_ffn_params, required=False)
)
LORA_DIMENSIONS = ("lora_qkv", "lora_up", "lora_down")
