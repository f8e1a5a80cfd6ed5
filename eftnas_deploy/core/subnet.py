"""SubnetConfig: the one type that says which sub-network, shared by every package."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eftnas_deploy.core.errors import SubnetConfigError

if TYPE_CHECKING:
    from eftnas_deploy.core.geometry import ModelGeometry
    from eftnas_deploy.core.space import SearchSpace

FORMAT_VERSION = 1


def _as_int_tuple(values: Iterable[Any], field: str) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise SubnetConfigError(f"{field}: expected a list of integers, got {values!r}")
    out = []
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SubnetConfigError(f"layer {i}: {field} must be a non-negative integer, got {value!r}")
        out.append(int(value))
    return tuple(out)


@dataclass(frozen=True, order=True)
class SubnetConfig:
    """Per-layer active attention heads and FFN width; 0 skips that block.

    Heads and neurons are always a prefix of the (importance-ordered) super-network.
    Frozen, hashable and ordered, so searches can cache and sort on it.
    """

    heads: tuple[int, ...]
    ffn: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", _as_int_tuple(self.heads, "heads"))
        object.__setattr__(self, "ffn", _as_int_tuple(self.ffn, "ffn"))
        if len(self.heads) != len(self.ffn):
            raise SubnetConfigError(
                f"heads/ffn: length mismatch ({len(self.heads)} heads entries, {len(self.ffn)} ffn entries)"
            )
        if not self.heads:
            raise SubnetConfigError("heads: a sub-network needs at least one layer")

    @property
    def num_layers(self) -> int:
        return len(self.heads)

    @classmethod
    def full(cls, geometry: ModelGeometry) -> SubnetConfig:
        """The whole super-network."""
        return cls(
            heads=(geometry.num_heads,) * geometry.num_layers,
            ffn=(geometry.intermediate_size,) * geometry.num_layers,
        )

    def is_full(self, geometry: ModelGeometry) -> bool:
        return self == SubnetConfig.full(geometry)

    def validate(self, geometry: ModelGeometry) -> SubnetConfig:
        """Raise SubnetConfigError naming the layer and field if this does not fit the model."""
        if self.num_layers != geometry.num_layers:
            raise SubnetConfigError(f"heads: {self.num_layers} layers given, model has {geometry.num_layers}")
        for i, (h, f) in enumerate(zip(self.heads, self.ffn)):
            if h > geometry.num_heads:
                raise SubnetConfigError(f"layer {i}: {h} heads requested, model has {geometry.num_heads}")
            if f > geometry.intermediate_size:
                raise SubnetConfigError(f"layer {i}: FFN width {f} requested, model has {geometry.intermediate_size}")
        return self

    def validate_space(self, space: SearchSpace) -> SubnetConfig:
        """Raise SubnetConfigError if a layer's choice is not allowed by the search space."""
        if self.num_layers != space.num_layers:
            raise SubnetConfigError(f"heads: {self.num_layers} layers given, search space has {space.num_layers}")
        for i, (h, f) in enumerate(zip(self.heads, self.ffn)):
            if h not in space.heads[i]:
                raise SubnetConfigError(f"layer {i}: {h} heads is not a search-space choice {list(space.heads[i])}")
            if f not in space.ffn[i]:
                raise SubnetConfigError(f"layer {i}: FFN width {f} is not a search-space choice {list(space.ffn[i])}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"heads": list(self.heads), "ffn": list(self.ffn)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubnetConfig:
        if not isinstance(data, dict):
            raise SubnetConfigError(f"subnet: expected an object with 'heads' and 'ffn', got {type(data).__name__}")
        for key in ("heads", "ffn"):
            if key not in data:
                raise SubnetConfigError(f"{key}: missing from sub-network config")
        unknown = set(data) - {"heads", "ffn", "format_version"}
        if unknown:
            raise SubnetConfigError(f"subnet: unknown field(s) {sorted(unknown)}")
        return cls(heads=data["heads"], ffn=data["ffn"])

    def to_json(self) -> str:
        return json.dumps({"format_version": FORMAT_VERSION, **self.to_dict()})

    @classmethod
    def from_json(cls, text: str) -> SubnetConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SubnetConfigError(f"subnet: not valid JSON ({exc})") from exc
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SubnetConfig:
        from eftnas_deploy.core.io import read_json

        return cls.from_dict(read_json(path, "subnet"))

    def __str__(self) -> str:
        return f"SubnetConfig(heads={list(self.heads)}, ffn={list(self.ffn)})"
