"""SearchSpace: the allowed per-layer choices of each elastic dimension (a set of SubnetConfigs)."""

from __future__ import annotations

import json
import numbers
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from eftnas_deploy.core.dimensions import dimension, dimension_names, required_names
from eftnas_deploy.core.errors import SearchSpaceError, SubnetConfigError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig

FORMAT_VERSION = 1
Choices = tuple[tuple[int, ...], ...]


def _choices(values: Any, field_name: str, layer: int) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise SearchSpaceError(f"layer {layer}: {field_name} choices must be a list of integers")
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values):
        raise SearchSpaceError(f"layer {layer}: {field_name} choices must be integers, got {list(values)}")
    out = sorted({int(v) for v in values}, reverse=True)
    if not out:
        raise SearchSpaceError(f"layer {layer}: {field_name} has no choices")
    if any(v < 0 for v in out):
        raise SearchSpaceError(f"layer {layer}: {field_name} choices must be non-negative, got {out}")
    return tuple(out)


class SearchSpace:
    """Per-layer choices of each dimension, sorted descending; 0 means the block may be skipped.

    `SearchSpace(heads=[[12, 8], ...], ffn=[[3072, 1536], ...])`; `space.heads[i]` reads one layer's choices.
    """

    __slots__ = ("_choices", "metadata")
    _choices: dict[str, Choices]
    metadata: dict[str, Any]

    def __init__(self, metadata: dict[str, Any] | None = None, **choices: Any) -> None:
        names = dimension_names()
        unknown = [name for name in choices if name not in names]
        if unknown:
            raise SearchSpaceError(f"search space: unknown dimension(s) {unknown} (registered: {list(names)})")
        for name in required_names():
            if name not in choices:
                raise SearchSpaceError(f"{name}: missing from search space")
        lengths = {name: len(choices[name]) for name in names if name in choices}
        if len(set(lengths.values())) > 1:
            raise SearchSpaceError(
                f"{'/'.join(lengths)}: length mismatch ({' vs '.join(str(n) for n in lengths.values())} layers)"
            )
        if not next(iter(lengths.values())):
            raise SearchSpaceError(f"{next(iter(lengths))}: the search space is empty (no layers)")
        ordered = {
            name: tuple(_choices(c, name, i) for i, c in enumerate(choices[name])) for name in names if name in choices
        }
        object.__setattr__(self, "_choices", ordered)
        object.__setattr__(self, "metadata", dict(metadata or {}))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"SearchSpace is immutable (cannot set {name!r})")

    def __getattr__(self, name: str) -> Choices:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._choices[name]
        except KeyError:
            raise AttributeError(f"SearchSpace has no dimension {name!r}") from None

    def __getstate__(self) -> tuple[dict[str, Choices], dict[str, Any]]:
        return self._choices, self.metadata

    def __setstate__(self, state: tuple[dict[str, Choices], dict[str, Any]]) -> None:
        object.__setattr__(self, "_choices", dict(state[0]))
        object.__setattr__(self, "metadata", dict(state[1]))

    def __eq__(self, other: object) -> bool:  # metadata does not count
        return isinstance(other, SearchSpace) and self._choices == other._choices

    def __hash__(self) -> int:
        return hash(tuple(self._choices.items()))

    def __repr__(self) -> str:
        return f"SearchSpace({', '.join(f'{n}={[list(c) for c in v]}' for n, v in self._choices.items())})"

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(self._choices)

    def items(self) -> list[tuple[str, Choices]]:
        return list(self._choices.items())

    @property
    def num_layers(self) -> int:
        return len(next(iter(self._choices.values())))

    @classmethod
    def full_range(cls, geometry: ModelGeometry, head_step: int = 1, ffn_step: int | None = None) -> SearchSpace:
        """Every head count and FFN widths in steps (default: 8 widths), no skipping."""
        ffn_step = ffn_step or max(1, geometry.intermediate_size // 8)
        heads = tuple(range(geometry.num_heads, 0, -head_step))
        ffn = tuple(range(geometry.intermediate_size, 0, -ffn_step))
        return cls(heads=(heads,) * geometry.num_layers, ffn=(ffn,) * geometry.num_layers)

    def validate(self, geometry: ModelGeometry) -> SearchSpace:
        first = self.dimensions[0]
        if self.num_layers != geometry.num_layers:
            raise SearchSpaceError(
                f"{first}: search space has {self.num_layers} layers, model has {geometry.num_layers}"
            )
        for i in range(self.num_layers):
            for name, choices in self._choices.items():
                dim = dimension(name)
                if choices[i][0] > dim.max_value(geometry):
                    raise SearchSpaceError(
                        f"layer {i}: {dim.describe(choices[i][0])} allowed, model has {dim.max_value(geometry)}"
                    )
        return self

    def check(self, subnet: SubnetConfig) -> SubnetConfig:
        """Raise SubnetConfigError naming the layer and field if `subnet` is not in this space."""
        if subnet.num_layers != self.num_layers:
            raise SubnetConfigError(
                f"{subnet.dimensions[0]}: {subnet.num_layers} layers given, search space has {self.num_layers}"
            )
        if set(subnet.dimensions) != set(self.dimensions):
            raise SubnetConfigError(
                f"subnet: states dimensions {list(subnet.dimensions)}, the search space has {list(self.dimensions)}"
            )
        for i in range(self.num_layers):
            for name, choices in self._choices.items():
                value = getattr(subnet, name)[i]
                if value not in choices[i]:
                    raise SubnetConfigError(
                        f"layer {i}: {dimension(name).describe(value)} is not a search-space choice {list(choices[i])}"
                    )
        return subnet

    @classmethod
    def single(cls, subnet: SubnetConfig) -> SearchSpace:
        """The space holding only `subnet` (e.g. to fine-tune one sub-network with the super-network trainer)."""
        return cls(**{name: tuple((v,) for v in values) for name, values in subnet.items()})

    def _pick(self, choose: Callable[[tuple[int, ...]], int]) -> SubnetConfig:
        return SubnetConfig(**{name: [choose(c) for c in choices] for name, choices in self._choices.items()})

    def largest(self) -> SubnetConfig:
        return self._pick(lambda c: c[0])

    def smallest(self) -> SubnetConfig:
        return self._pick(lambda c: c[-1])

    def middle(self) -> SubnetConfig:
        return self._pick(lambda c: c[len(c) // 2])

    def sample(self, rng: random.Random) -> SubnetConfig:
        return self._pick(rng.choice)

    def shrink_to_fit(
        self, subnet: SubnetConfig, fits: Callable[[SubnetConfig], bool], rng: random.Random
    ) -> SubnetConfig | None:
        """`subnet` with random layer choices stepped down to the next smaller option until `fits` holds
        (None if even the space's smallest sub-network does not fit)."""
        values = {name: list(v) for name, v in subnet.items()}
        while not fits(current := SubnetConfig(**values)):
            shrinkable = [
                (name, layer)
                for name, choices in self._choices.items()
                for layer, c in enumerate(choices)
                if c.index(values[name][layer]) < len(c) - 1
            ]
            if not shrinkable:
                return None
            name, layer = rng.choice(shrinkable)
            c = self._choices[name][layer]
            values[name][layer] = c[c.index(values[name][layer]) + 1]  # choices are in descending order
        return current

    def layer_choices(self, layer: int) -> tuple[tuple[int, ...], ...]:
        """One layer's choices of each dimension (in `dimensions` order), for searchers."""
        return tuple(choices[layer] for choices in self._choices.values())

    def __contains__(self, subnet: object) -> bool:
        return (
            isinstance(subnet, SubnetConfig)
            and subnet.num_layers == self.num_layers
            and set(subnet.dimensions) == set(self.dimensions)
            and all(v in c for name, choices in self._choices.items() for v, c in zip(getattr(subnet, name), choices))
        )

    def size(self) -> int:
        """Number of distinct sub-networks."""
        n = 1
        for choices in self._choices.values():
            for c in choices:
                n *= len(c)
        return n

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            **{name: [list(c) for c in choices] for name, choices in self._choices.items()},
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        if not isinstance(data, Mapping):
            raise SearchSpaceError("search space: expected a JSON object")
        for key in required_names():
            if key not in data:
                raise SearchSpaceError(f"{key}: missing from search space")
        choices = {k: v for k, v in data.items() if k not in ("format_version", "metadata")}
        return cls(metadata=data.get("metadata", {}), **choices)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SearchSpace:
        from eftnas_deploy.core.io import read_json

        return cls.from_dict(read_json(path, "search-space"))


def sample_across_cost(space: SearchSpace, k: int, seed: int = 0) -> list[SubnetConfig]:
    """`k` distinct seeded sub-networks spread over the whole cost range (not clustered in the middle).

    Sub-network i targets the quantile q_i (stratified in [0, 1]) of every layer's choices, with jitter
    per layer, so the sample covers small, medium and large networks with mixed per-layer widths.
    """
    rng = random.Random(seed)
    out: list[SubnetConfig] = []
    for attempt in range(50 * k):
        if len(out) == k:
            break
        q = (len(out) + rng.random()) / k
        values: dict[str, list[int]] = {}
        for name, choices in space.items():
            for layer_choices in choices:
                ascending = sorted(layer_choices)
                top = len(ascending) - 1
                index = round(q * top + rng.gauss(0.0, 0.25 * top)) if attempt < 40 * k else rng.randrange(top + 1)
                values.setdefault(name, []).append(ascending[min(top, max(0, index))])
        subnet = SubnetConfig(**values)
        if subnet not in out:
            out.append(subnet)
    return out
