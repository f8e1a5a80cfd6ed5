"""Klein et al.'s search spaces ("Structural pruning of pre-trained language models via NAS") that fit this pipeline.

Everything downstream of the space (super-network sampling, the searcher's per-layer encoding, the latency
LUT, slicing, export) consumes a `SearchSpace`: independent per-layer choices of heads and FFN width. Of
Klein et al.'s four spaces only one is such a space:

- medium: free per-layer heads and units, 0 drops the block (`medium_space`): `space.kind: medium`.

The other three were removed (they were reachable only from tests):
- small (the same heads and units in every kept layer) couples the layers: as per-layer choices it would
  be the medium space, so searching it would need a second encoding in the searcher;
- layer (whole layers kept or dropped) couples heads and FFN of a layer: as per-layer choices of
  {all, 0} x {all, 0} it would also admit attention-only and FFN-only layers;
- large (any subset of units) is not a prefix of the importance order and gave a second sub-network type
  (`UnitSelection`) that no other stage reads; weight-sharing training uses one fixed unit order.

`UnitSelection` stays: it permutes a model so an arbitrary set of units slices as a prefix (used to check
importance rankings against random unit sets).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedModel

from eftnas_deploy.core.errors import SearchSpaceError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.families.models import task_of
from eftnas_deploy.supernet.dims import HANDLERS
from eftnas_deploy.supernet.reorder import permute_units


def medium_space(geometry: ModelGeometry, head_step: int = 1, ffn_step: int | None = None) -> SearchSpace:
    """Free per-layer heads and FFN widths, including 0 (skip the block)."""
    full = SearchSpace.full_range(geometry, head_step=head_step, ffn_step=ffn_step)
    return SearchSpace(
        heads=[(*c, 0) for c in full.heads],
        ffn=[(*c, 0) for c in full.ffn],
        metadata={"generator": "klein-medium"},
    )


@dataclass(frozen=True)
class UnitSelection:
    """Indices of the kept heads and FFN neurons of every layer (any subset, not a prefix)."""

    heads: tuple[tuple[int, ...], ...]
    ffn: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if len(self.heads) != len(self.ffn):
            raise SearchSpaceError(f"heads/ffn: length mismatch ({len(self.heads)} vs {len(self.ffn)} layers)")
        object.__setattr__(self, "heads", tuple(tuple(sorted({int(i) for i in h})) for h in self.heads))
        object.__setattr__(self, "ffn", tuple(tuple(sorted({int(i) for i in f})) for f in self.ffn))

    def counts(self) -> SubnetConfig:
        """The prefix sub-network with the same unit counts (same cost)."""
        return SubnetConfig(heads=[len(h) for h in self.heads], ffn=[len(f) for f in self.ffn])

    def validate(self, geometry: ModelGeometry) -> UnitSelection:
        self.counts().validate(geometry)
        for layer, (h, f) in enumerate(zip(self.heads, self.ffn)):
            if h and (h[0] < 0 or h[-1] >= geometry.num_heads):
                raise SearchSpaceError(f"layer {layer}: head indices {list(h)} outside 0..{geometry.num_heads - 1}")
            if f and (f[0] < 0 or f[-1] >= geometry.intermediate_size):
                raise SearchSpaceError(f"layer {layer}: FFN indices outside 0..{geometry.intermediate_size - 1}")
        return self

    def apply(self, model: PreTrainedModel) -> SubnetConfig:
        """Permute `model` in place so the kept units come first; returns the SubnetConfig to slice."""
        geometry = ModelGeometry.from_config(model.config, task=task_of(model))
        kept = {"heads": self.heads, "ffn": self.ffn}
        for name, handler in HANDLERS.items():
            for i, units in enumerate(kept[name]):
                permute_units(model, name, i, _kept_first(units, handler.size(geometry)))
        return self.counts()

    def materialize(self, model: PreTrainedModel) -> tuple[PreTrainedModel, SubnetConfig]:
        """A permuted copy of `model` and the SubnetConfig that selects exactly these units."""
        clone = copy.deepcopy(model)
        return clone, self.apply(clone)


def _kept_first(kept: Sequence[int], size: int) -> list[int]:
    kept_set = set(kept)
    return list(kept) + [i for i in range(size) if i not in kept_set]
