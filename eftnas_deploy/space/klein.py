"""The search spaces of Klein et al. ("Structural pruning of pre-trained language models via NAS").

- small: the same number of layers, heads and FFN units for all kept layers (`SmallSpace`);
- layer: any subset of layers, each kept whole (`LayerSpace`);
- medium: free per-layer heads and units, 0 drops the block (`medium_space`, a plain SearchSpace);
- large: per-unit keep/drop (`LargeSpace` of `UnitSelection`s). A selection is not a prefix; it
  becomes one by a function-preserving permutation (`UnitSelection.apply`), after which its
  SubnetConfig slices exactly. Weight-sharing super-network training uses one fixed order, so the
  large space is meant for evaluating/pruning a fine-tuned model, not for super-network training.

All spaces offer sample(rng), smallest(), largest(), middle() and layer_choices(i).
"""

from __future__ import annotations

import copy
import random
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

KLEIN_SPACES = ("small", "layer", "medium", "large")


def _sorted_choices(values: Sequence[int], name: str, maximum: int) -> tuple[int, ...]:
    out = tuple(sorted({int(v) for v in values}, reverse=True))
    if not out:
        raise SearchSpaceError(f"{name}: no choices (the space would be empty)")
    if out[-1] < 0 or out[0] > maximum:
        raise SearchSpaceError(f"{name}: choices must lie in [0, {maximum}], got {list(out)}")
    return out


@dataclass(frozen=True)
class SmallSpace:
    """The first `n` layers kept, each with the same heads `h` and FFN width `u`; the rest skipped."""

    geometry: ModelGeometry
    layers: tuple[int, ...]
    heads: tuple[int, ...]
    ffn: tuple[int, ...]

    @classmethod
    def default(cls, geometry: ModelGeometry, ffn_step: int | None = None) -> SmallSpace:
        step = ffn_step or max(1, geometry.intermediate_size // 8)
        return cls(
            geometry,
            layers=tuple(range(geometry.num_layers, 0, -1)),
            heads=tuple(range(geometry.num_heads, 0, -1)),
            ffn=tuple(range(geometry.intermediate_size, 0, -step)),
        )

    def __post_init__(self) -> None:
        g = self.geometry
        object.__setattr__(self, "layers", _sorted_choices(self.layers, "layers", g.num_layers))
        object.__setattr__(self, "heads", _sorted_choices(self.heads, "heads", g.num_heads))
        object.__setattr__(self, "ffn", _sorted_choices(self.ffn, "ffn", g.intermediate_size))

    def config(self, layers: int, heads: int, ffn: int) -> SubnetConfig:
        skipped = self.geometry.num_layers - layers
        return SubnetConfig(heads=[heads] * layers + [0] * skipped, ffn=[ffn] * layers + [0] * skipped)

    def largest(self) -> SubnetConfig:
        return self.config(self.layers[0], self.heads[0], self.ffn[0])

    def smallest(self) -> SubnetConfig:
        return self.config(self.layers[-1], self.heads[-1], self.ffn[-1])

    def middle(self) -> SubnetConfig:
        mid = [c[len(c) // 2] for c in (self.layers, self.heads, self.ffn)]
        return self.config(*mid)

    def sample(self, rng: random.Random) -> SubnetConfig:
        return self.config(rng.choice(self.layers), rng.choice(self.heads), rng.choice(self.ffn))

    def layer_choices(self, layer: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(heads, FFN) values layer `layer` can take (0 if it may be among the skipped layers)."""
        may_skip = layer >= self.layers[-1]
        return self.heads + ((0,) if may_skip else ()), self.ffn + ((0,) if may_skip else ())

    def __contains__(self, subnet: object) -> bool:
        return any(
            subnet == self.config(n, h, f) for n in self.layers for h in self.heads for f in self.ffn
        )  # small enough to enumerate


@dataclass(frozen=True)
class LayerSpace:
    """Any subset of at least `min_layers` layers, each kept whole."""

    geometry: ModelGeometry
    min_layers: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.min_layers <= self.geometry.num_layers:
            raise SearchSpaceError(f"min_layers: must be in [0, {self.geometry.num_layers}], got {self.min_layers}")

    def config(self, kept: Sequence[int]) -> SubnetConfig:
        g = self.geometry
        kept_set = set(kept)
        if len(kept_set) < self.min_layers or not kept_set <= set(range(g.num_layers)):
            raise SearchSpaceError(f"layers: {sorted(kept_set)} is not a subset of >= {self.min_layers} layers")
        return SubnetConfig(
            heads=[g.num_heads if i in kept_set else 0 for i in range(g.num_layers)],
            ffn=[g.intermediate_size if i in kept_set else 0 for i in range(g.num_layers)],
        )

    def largest(self) -> SubnetConfig:
        return self.config(range(self.geometry.num_layers))

    def smallest(self) -> SubnetConfig:
        return self.config(range(self.min_layers))

    def middle(self) -> SubnetConfig:
        return self.config(range(max(self.min_layers, (self.geometry.num_layers + 1) // 2)))

    def sample(self, rng: random.Random) -> SubnetConfig:
        count = rng.randint(self.min_layers, self.geometry.num_layers)
        return self.config(rng.sample(range(self.geometry.num_layers), count))

    def layer_choices(self, layer: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        g = self.geometry
        return (g.num_heads, 0), (g.intermediate_size, 0)

    def __contains__(self, subnet: object) -> bool:
        g = self.geometry
        if not isinstance(subnet, SubnetConfig) or subnet.num_layers != g.num_layers:
            return False
        kept = [h == g.num_heads and f == g.intermediate_size for h, f in zip(subnet.heads, subnet.ffn)]
        whole = all(k or (h == 0 and f == 0) for k, h, f in zip(kept, subnet.heads, subnet.ffn))
        return whole and sum(kept) >= self.min_layers


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


@dataclass(frozen=True)
class LargeSpace:
    """Every head and every FFN neuron independently kept or dropped."""

    geometry: ModelGeometry
    keep_probability: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.keep_probability <= 1:
            raise SearchSpaceError(f"keep_probability: must be in (0, 1], got {self.keep_probability}")

    def _select(self, heads: int, ffn: int) -> UnitSelection:
        n = self.geometry.num_layers
        return UnitSelection(heads=[range(heads)] * n, ffn=[range(ffn)] * n)

    def largest(self) -> UnitSelection:
        return self._select(self.geometry.num_heads, self.geometry.intermediate_size)

    def smallest(self) -> UnitSelection:
        return self._select(0, 0)

    def middle(self) -> UnitSelection:
        return self._select(self.geometry.num_heads // 2, self.geometry.intermediate_size // 2)

    def sample(self, rng: random.Random) -> UnitSelection:
        g, p = self.geometry, self.keep_probability
        return UnitSelection(
            heads=[[i for i in range(g.num_heads) if rng.random() < p] for _ in range(g.num_layers)],
            ffn=[[i for i in range(g.intermediate_size) if rng.random() < p] for _ in range(g.num_layers)],
        )

    def layer_choices(self, layer: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The head and neuron indices of layer `layer`, each of which may be kept or dropped."""
        return tuple(range(self.geometry.num_heads)), tuple(range(self.geometry.intermediate_size))

    def __contains__(self, selection: object) -> bool:
        if not isinstance(selection, UnitSelection) or len(selection.heads) != self.geometry.num_layers:
            return False
        try:
            selection.validate(self.geometry)
        except Exception:
            return False
        return True


def klein_space(name: str, geometry: ModelGeometry) -> SmallSpace | LayerSpace | SearchSpace | LargeSpace:
    """One of Klein et al.'s spaces with default choices, by name."""
    if name == "small":
        return SmallSpace.default(geometry)
    if name == "layer":
        return LayerSpace(geometry)
    if name == "medium":
        return medium_space(geometry)
    if name == "large":
        return LargeSpace(geometry)
    raise SearchSpaceError(f"space: {name!r} is not one of {KLEIN_SPACES}")
