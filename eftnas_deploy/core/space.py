"""SearchSpace: the allowed per-layer choices of heads and FFN width (a set of SubnetConfigs)."""

from __future__ import annotations

import json
import numbers
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eftnas_deploy.core.errors import SearchSpaceError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig

FORMAT_VERSION = 1


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


@dataclass(frozen=True)
class SearchSpace:
    """Per-layer sorted (descending) choices; 0 means the block may be skipped."""

    heads: tuple[tuple[int, ...], ...]
    ffn: tuple[tuple[int, ...], ...]
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if len(self.heads) != len(self.ffn):
            raise SearchSpaceError(f"heads/ffn: length mismatch ({len(self.heads)} vs {len(self.ffn)} layers)")
        if not self.heads:
            raise SearchSpaceError("heads: the search space is empty (no layers)")
        object.__setattr__(self, "heads", tuple(_choices(c, "heads", i) for i, c in enumerate(self.heads)))
        object.__setattr__(self, "ffn", tuple(_choices(c, "ffn", i) for i, c in enumerate(self.ffn)))

    @property
    def num_layers(self) -> int:
        return len(self.heads)

    @classmethod
    def full_range(cls, geometry: ModelGeometry, head_step: int = 1, ffn_step: int | None = None) -> SearchSpace:
        """Every head count and FFN widths in steps (default: 8 widths), no skipping."""
        ffn_step = ffn_step or max(1, geometry.intermediate_size // 8)
        heads = tuple(range(geometry.num_heads, 0, -head_step))
        ffn = tuple(range(geometry.intermediate_size, 0, -ffn_step))
        return cls(heads=(heads,) * geometry.num_layers, ffn=(ffn,) * geometry.num_layers)

    def validate(self, geometry: ModelGeometry) -> SearchSpace:
        if self.num_layers != geometry.num_layers:
            raise SearchSpaceError(f"heads: search space has {self.num_layers} layers, model has {geometry.num_layers}")
        for i in range(self.num_layers):
            if self.heads[i][0] > geometry.num_heads:
                raise SearchSpaceError(f"layer {i}: {self.heads[i][0]} heads allowed, model has {geometry.num_heads}")
            if self.ffn[i][0] > geometry.intermediate_size:
                raise SearchSpaceError(
                    f"layer {i}: FFN width {self.ffn[i][0]} allowed, model has {geometry.intermediate_size}"
                )
        return self

    @classmethod
    def single(cls, subnet: SubnetConfig) -> SearchSpace:
        """The space holding only `subnet` (e.g. to fine-tune one sub-network with the super-network trainer)."""
        return cls(heads=tuple((h,) for h in subnet.heads), ffn=tuple((f,) for f in subnet.ffn))

    def largest(self) -> SubnetConfig:
        return SubnetConfig(heads=[c[0] for c in self.heads], ffn=[c[0] for c in self.ffn])

    def smallest(self) -> SubnetConfig:
        return SubnetConfig(heads=[c[-1] for c in self.heads], ffn=[c[-1] for c in self.ffn])

    def middle(self) -> SubnetConfig:
        return SubnetConfig(heads=[c[len(c) // 2] for c in self.heads], ffn=[c[len(c) // 2] for c in self.ffn])

    def sample(self, rng: random.Random) -> SubnetConfig:
        return SubnetConfig(heads=[rng.choice(c) for c in self.heads], ffn=[rng.choice(c) for c in self.ffn])

    def layer_choices(self, layer: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(head choices, FFN choices) of one layer, for searchers."""
        return self.heads[layer], self.ffn[layer]

    def __contains__(self, subnet: object) -> bool:
        return (
            isinstance(subnet, SubnetConfig)
            and subnet.num_layers == self.num_layers
            and all(h in c for h, c in zip(subnet.heads, self.heads))
            and all(f in c for f, c in zip(subnet.ffn, self.ffn))
        )

    def size(self) -> int:
        """Number of distinct sub-networks."""
        n = 1
        for h, f in zip(self.heads, self.ffn):
            n *= len(h) * len(f)
        return n

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "heads": [list(c) for c in self.heads],
            "ffn": [list(c) for c in self.ffn],
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        if not isinstance(data, dict):
            raise SearchSpaceError("search space: expected a JSON object")
        for key in ("heads", "ffn"):
            if key not in data:
                raise SearchSpaceError(f"{key}: missing from search space")
        return cls(heads=data["heads"], ffn=data["ffn"], metadata=data.get("metadata", {}))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SearchSpace:
        from eftnas_deploy.core.io import read_json

        return cls.from_dict(read_json(path, "search-space"))
