"""SubnetConfig: the one type that says which sub-network, shared by every package."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eftnas_deploy.core.dimensions import dimension, dimension_names, required_names
from eftnas_deploy.core.errors import SubnetConfigError

if TYPE_CHECKING:
    from eftnas_deploy.core.geometry import ModelGeometry

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


@functools.total_ordering
class SubnetConfig:
    """Per-layer values of each elastic dimension (see `core.dimensions`); 0 skips that block.

    `SubnetConfig(heads=[...], ffn=[...])` (or positionally, in registry order). Values are a prefix
    of the (importance-ordered) super-network. Immutable, hashable and ordered, so searches can
    cache and sort on it; `subnet.heads` reads one dimension's per-layer tuple.
    """

    __slots__ = ("_values",)
    _values: dict[str, tuple[int, ...]]

    def __init__(self, *positional: Iterable[int], **values: Iterable[int]) -> None:
        names = dimension_names()
        if len(positional) > len(required_names()):
            raise SubnetConfigError(f"subnet: at most {len(required_names())} positional dimensions {required_names()}")
        for name, given in zip(required_names(), positional):
            if name in values:
                raise SubnetConfigError(f"{name}: given twice")
            values[name] = given
        unknown = [name for name in values if name not in names]
        if unknown:
            raise SubnetConfigError(f"subnet: unknown dimension(s) {unknown} (registered: {list(names)})")
        for name in required_names():
            if name not in values:
                raise SubnetConfigError(f"{name}: missing from sub-network config")
        ordered = {name: _as_int_tuple(values[name], name) for name in names if name in values}
        lengths = {name: len(v) for name, v in ordered.items()}
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{n} {name} entries" for name, n in lengths.items())
            raise SubnetConfigError(f"{'/'.join(lengths)}: length mismatch ({detail})")
        if not next(iter(lengths.values())):
            raise SubnetConfigError(f"{next(iter(lengths))}: a sub-network needs at least one layer")
        object.__setattr__(self, "_values", ordered)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"SubnetConfig is immutable (cannot set {name!r})")

    def __getattr__(self, name: str) -> tuple[int, ...]:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"SubnetConfig has no dimension {name!r}") from None

    def __getstate__(self) -> dict[str, tuple[int, ...]]:
        return dict(self._values)

    def __setstate__(self, state: dict[str, tuple[int, ...]]) -> None:
        object.__setattr__(self, "_values", dict(state))

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The dimensions this sub-network states, in registry order."""
        return tuple(self._values)

    def items(self) -> Iterator[tuple[str, tuple[int, ...]]]:
        return iter(self._values.items())

    def layer(self, index: int) -> dict[str, int]:
        """One layer's value of every dimension."""
        return {name: values[index] for name, values in self._values.items()}

    def replace(self, **values: Iterable[int]) -> SubnetConfig:
        return SubnetConfig(**{**self._values, **values})

    @property
    def num_layers(self) -> int:
        return len(next(iter(self._values.values())))

    def _key(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return tuple(self._values.items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SubnetConfig) and self._key() == other._key()

    def __lt__(self, other: SubnetConfig) -> bool:
        if not isinstance(other, SubnetConfig):
            return NotImplemented
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @classmethod
    def full(cls, geometry: ModelGeometry) -> SubnetConfig:
        """The whole super-network."""
        return cls(**{name: (dimension(name).max_value(geometry),) * geometry.num_layers for name in required_names()})

    def is_full(self, geometry: ModelGeometry) -> bool:
        return self == SubnetConfig.full(geometry)

    def validate(self, geometry: ModelGeometry) -> SubnetConfig:
        """Raise SubnetConfigError naming the layer and field if this does not fit the model."""
        first = self.dimensions[0]
        if self.num_layers != geometry.num_layers:
            raise SubnetConfigError(f"{first}: {self.num_layers} layers given, model has {geometry.num_layers}")
        for i in range(self.num_layers):
            for name, values in self._values.items():
                dim = dimension(name)
                if values[i] > dim.max_value(geometry):
                    raise SubnetConfigError(
                        f"layer {i}: {dim.describe(values[i])} requested, model has {dim.max_value(geometry)}"
                    )
        return self

    def to_dict(self) -> dict[str, Any]:
        return {name: list(values) for name, values in self._values.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SubnetConfig:
        if not isinstance(data, Mapping):
            raise SubnetConfigError(
                f"subnet: expected an object with {list(required_names())}, got {type(data).__name__}"
            )
        for key in required_names():
            if key not in data:
                raise SubnetConfigError(f"{key}: missing from sub-network config")
        unknown = set(data) - {*dimension_names(), "format_version"}
        if unknown:
            raise SubnetConfigError(f"subnet: unknown field(s) {sorted(unknown)}")
        return cls(**{k: v for k, v in data.items() if k != "format_version"})

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

    def __repr__(self) -> str:
        return f"SubnetConfig({', '.join(f'{name}={list(values)}' for name, values in self._values.items())})"

    __str__ = __repr__
