"""The latency lookup table: a versioned JSON file of per-block latencies measured on one target.

Entries are keyed by (block kind, width): ``attention`` by head count, ``ffn`` by intermediate width,
plus the single ``fixed`` entry (embeddings, mask preparation, task head). Widths that were not
measured are interpolated piecewise-linearly between the measured neighbours.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.io import read_json, write_json

FORMAT_VERSION = 1
BLOCK_KINDS = ("attention", "ffn")
# Geometry fields that change block latency (vocab size only changes the embedding gather's table).
LATENCY_GEOMETRY_FIELDS = ("model_type", "hidden_size", "num_heads", "head_dim", "intermediate_size", "task")


class LutMismatchError(EftnasError):
    """A LUT was measured for another target or model than the one asked for."""


@dataclass(frozen=True)
class Overhead:
    """Calibrated correction added to the summed entries S (fixed part + blocks):
    ``constant_us + scale * S + square_per_us * S**2``.

    Fitted by least squares on end-to-end measurements of sliced sub-networks; zero means "entries as measured".
    The square term is the interaction the per-block sum misses (a whole model's weights and activations
    compete for the caches, so large sub-networks run slower than the sum of their blocks timed apart).
    """

    constant_us: float = 0.0
    scale: float = 0.0
    calibration: list[dict[str, Any]] = field(default_factory=list)
    square_per_us: float = 0.0

    def correct(self, entries_us: float) -> float:
        """The predicted latency (µs) of a sub-network whose entries sum to `entries_us`."""
        return entries_us * (1.0 + self.scale) + self.constant_us + self.square_per_us * entries_us * entries_us

    def to_dict(self) -> dict[str, Any]:
        return {
            "constant_us": self.constant_us,
            "scale": self.scale,
            "square_per_us": self.square_per_us,
            "calibration": self.calibration,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Overhead:
        return cls(
            constant_us=float(data.get("constant_us", 0.0)),
            scale=float(data.get("scale", 0.0)),
            calibration=list(data.get("calibration", [])),
            square_per_us=float(data.get("square_per_us", 0.0)),  # absent from LUTs written before it existed
        )


@dataclass
class LatencyTable:
    """Measured block latencies (µs, median over repeats) plus the metadata of where they were measured."""

    geometry: ModelGeometry
    runtime: str
    runtime_version: str
    threads: int
    precision: str
    seq_len: int
    batch: int
    fixed_us: float
    entries: dict[str, dict[int, dict[str, float]]]
    overhead: Overhead = field(default_factory=Overhead)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind in BLOCK_KINDS:
            widths = self.entries.get(kind)
            if not widths or not any(w > 0 for w in widths):
                raise EftnasError(f"entries.{kind}: the LUT has no measured {kind} width")
            widths.setdefault(0, {"median_us": 0.0, "spread_us": 0.0})

    # -- lookup -------------------------------------------------------------------------------------
    def measured_widths(self, kind: str) -> list[int]:
        return sorted(self.entries[kind])

    def block_us(self, kind: str, width: int) -> float:
        """Latency of one block (0 = skipped); piecewise-linear between measured widths, refused outside them."""
        table = self.entries[kind]
        if width in table:
            return table[width]["median_us"]
        measured = [w for w in self.measured_widths(kind) if w > 0]
        if not measured or width < measured[0] or width > measured[-1]:
            low, high = (measured[0], measured[-1]) if measured else (0, 0)
            raise LutMismatchError(f"{kind}: width {width} is outside the measured range [{low}, {high}] (or 0)")
        return float(np.interp(width, measured, [table[w]["median_us"] for w in measured]))

    def block_table(self, kind: str) -> list[float]:
        """Latency of every width 0..max measured (interpolated; NaN below the smallest measured width)."""
        measured = [w for w in self.measured_widths(kind) if w > 0]
        values = np.interp(
            np.arange(measured[-1] + 1), measured, [self.entries[kind][w]["median_us"] for w in measured]
        )
        values[1 : measured[0]] = np.nan
        values[0] = 0.0
        return values.tolist()

    # -- checks -------------------------------------------------------------------------------------
    def mismatches(
        self,
        geometry: ModelGeometry | None = None,
        runtime: str | None = None,
        threads: int | None = None,
        seq_len: int | None = None,
        batch: int | None = None,
        precision: str | None = None,
    ) -> list[str]:
        """Human-readable differences between this LUT and what is asked (empty when it fits)."""
        problems = []
        if geometry is not None:
            problems += [f"geometry.{m}" for m in self.geometry.mismatches(geometry, LATENCY_GEOMETRY_FIELDS)]
        asked = {"runtime": runtime, "threads": threads, "seq_len": seq_len, "batch": batch, "precision": precision}
        for name, value in asked.items():
            if value is not None and getattr(self, name) != value:
                problems.append(f"{name}: LUT has {getattr(self, name)!r}, asked for {value!r}")
        return problems

    def check(self, allow_approximate: bool = False, **asked: Any) -> LatencyTable:
        """Raise LutMismatchError naming every mismatch, unless approximate use is allowed."""
        problems = self.mismatches(**asked)
        if problems and not allow_approximate:
            raise LutMismatchError(
                "LUT does not match the target (" + "; ".join(problems) + "); pass allow_approximate=True "
                "(--allow-approximate) to use it anyway"
            )
        return self

    # -- serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "metadata": self.metadata,
            "target": {
                "runtime": self.runtime,
                "runtime_version": self.runtime_version,
                "threads": self.threads,
                "precision": self.precision,
                "seq_len": self.seq_len,
                "batch": self.batch,
            },
            "geometry": self.geometry.to_dict(),
            "unit": "us",
            "fixed": {"median_us": self.fixed_us},
            "entries": {
                kind: {str(w): stats for w, stats in sorted(self.entries[kind].items())} for kind in BLOCK_KINDS
            },
            "overhead": self.overhead.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyTable:
        if not isinstance(data, dict):
            raise EftnasError("lut: expected a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise EftnasError(f"format_version: LUT has {version!r}, this toolkit reads {FORMAT_VERSION}")
        for key in ("target", "geometry", "fixed", "entries"):
            if key not in data:
                raise EftnasError(f"{key}: missing from LUT")
        target = data["target"]
        for key in ("runtime", "runtime_version", "threads", "precision", "seq_len", "batch"):
            if key not in target:
                raise EftnasError(f"target.{key}: missing from LUT")
        entries = {}
        for kind in BLOCK_KINDS:
            raw = data["entries"].get(kind)
            if not isinstance(raw, dict):
                raise EftnasError(f"entries.{kind}: missing from LUT")
            entries[kind] = {int(w): dict(stats) for w, stats in raw.items()}
        return cls(
            geometry=ModelGeometry.from_dict(data["geometry"]),
            runtime=target["runtime"],
            runtime_version=target["runtime_version"],
            threads=int(target["threads"]),
            precision=target["precision"],
            seq_len=int(target["seq_len"]),
            batch=int(target["batch"]),
            fixed_us=float(data["fixed"]["median_us"]),
            entries=entries,
            overhead=Overhead.from_dict(data.get("overhead", {})),
            metadata=dict(data.get("metadata", {})),
        )

    def save(self, path: str | Path) -> Path:
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, allow_approximate: bool = False, **asked: Any) -> LatencyTable:
        """Read a LUT file and check it against what is asked (geometry, runtime, threads, seq_len, ...)."""
        return read_lut(path).check(allow_approximate=allow_approximate, **asked)

    def fingerprint(self) -> str:
        """A hash of the LUT's content: what a search's trial log records to notice another LUT on resume."""
        import hashlib
        import json

        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def default_metadata(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Where and when a LUT was measured: CPU, cores, toolkit version, date."""
    from eftnas_deploy import __version__
    from exporters.runtime import cpu_info

    return {
        **cpu_info(),
        "toolkit_version": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }


def width_grid(choices: Iterable[int], grid: int | None) -> list[int]:
    """The widths to measure: all `choices`, or `grid` of them evenly spread (always the extremes)."""
    values = sorted(set(choices))
    if grid is None or grid >= len(values):
        return values
    if grid < 2:
        raise EftnasError(f"grid: at least 2 widths are needed to interpolate, got {grid}")
    picks = np.unique(np.round(np.linspace(0, len(values) - 1, grid)).astype(int))
    return [values[i] for i in picks]


def read_lut(path: str | Path, what: str = "lut") -> LatencyTable:
    """A LUT file, with one-line errors for a missing, binary, truncated or malformed file."""
    data = read_json(path, what)
    try:
        return LatencyTable.from_dict(data)
    except EftnasError as exc:
        raise EftnasError(f"{what}: {path} is not a usable LUT ({exc})") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EftnasError(f"{what}: {path} is not a valid LUT file ({type(exc).__name__}: {exc})") from None
