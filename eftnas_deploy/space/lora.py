"""Search spaces of LoRA super-adapters: an importance-generated width space plus elastic-rank dimensions.

LoNAS searches widths (heads, FFN) and ranks together; Shears NLS searches the ranks at the full widths
(`elastic_widths=False`). Rank dimensions (`lora_qkv`, `lora_up`, `lora_down`) carry no LUT block: once
merged, an adapter costs nothing at inference, so latency and MACs follow the widths alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from eftnas_deploy.core.dimensions import LORA_DIMENSIONS
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.space import SearchSpace


def with_rank_dimensions(
    space: SearchSpace,
    rank_choices: Iterable[int],
    groups: Iterable[str] = LORA_DIMENSIONS,
    elastic_widths: bool = True,
    geometry: ModelGeometry | None = None,
) -> SearchSpace:
    """`space` plus one rank dimension per LoRA group with `rank_choices` in every layer.

    `elastic_widths=False` replaces the width choices with the full widths of `geometry` (Shears NLS). The
    metadata records the rank choices under "lora".
    """
    ranks = tuple(sorted({int(r) for r in rank_choices}, reverse=True))
    groups = tuple(groups)
    unknown = [g for g in groups if g not in LORA_DIMENSIONS]
    if unknown or not groups:
        raise EftnasError(f"groups: {unknown or 'none'} given; choose from {list(LORA_DIMENSIONS)}")
    if not ranks or ranks[-1] < 0:
        raise EftnasError(f"rank_choices: non-negative ranks are required, got {list(rank_choices)}")
    layers = space.num_layers
    choices = {name: [list(c) for c in values] for name, values in space.items() if name not in LORA_DIMENSIONS}
    if not elastic_widths:
        if geometry is None:
            raise EftnasError("geometry: fixed full widths need the model's geometry")
        choices["heads"] = [[geometry.num_heads]] * layers
        choices["ffn"] = [[geometry.intermediate_size]] * layers
    for group in groups:
        choices[group] = [list(ranks)] * layers
    metadata = {**space.metadata, "lora": {"rank_choices": list(ranks), "groups": list(groups)}}
    metadata["lora"]["elastic_widths"] = elastic_widths
    return SearchSpace(metadata=metadata, **choices)


def widths_space(space: SearchSpace) -> SearchSpace:
    """`space` without its rank dimensions (what latency tables and slicing see)."""
    choices = {name: [list(c) for c in values] for name, values in space.items() if name not in LORA_DIMENSIONS}
    metadata = {k: v for k, v in space.metadata.items() if k != "lora"}
    return SearchSpace(metadata=metadata, **choices)
