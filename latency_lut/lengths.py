"""LUTs of one target at several sequence lengths: a latency figure for any length in the measured range.

Traffic rarely has one length. `LengthTables` holds one `LatencyTable` per measured length (same model
geometry, runtime, precision, threads and batch); a length between two measured ones is predicted by
linear interpolation of the two neighbours' predictions, and a length outside the range is refused.
The file is one JSON object: `{"kind": "eftnas-lut-lengths", "format_version": 1, "tables": [...]}`.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.io import read_json, write_json
from eftnas_deploy.core.subnet import SubnetConfig
from latency_lut.predict import LatencyPredictor
from latency_lut.table import LatencyTable, LutMismatchError

FILE_KIND = "eftnas-lut-lengths"
FORMAT_VERSION = 1
SHARED_TARGET = ("runtime", "precision", "threads", "batch")


class LengthTables:
    """One LatencyTable per sequence length of the same target; `predict_ms(subnet, seq_len)` for any length."""

    def __init__(self, tables: Iterable[LatencyTable]) -> None:
        tables = sorted(tables, key=lambda t: t.seq_len)
        if not tables:
            raise EftnasError("tables: a length set needs at least one LUT")
        first = tables[0]
        for previous, table in itertools.pairwise(tables):
            if table.seq_len == previous.seq_len:
                raise EftnasError(f"seq_len: {table.seq_len} is measured twice")
            problems = table.mismatches(first.geometry, **{name: getattr(first, name) for name in SHARED_TARGET})
            if problems:
                raise LutMismatchError(
                    f"tables: the LUT at seq_len {table.seq_len} is for another target than the one at "
                    f"{first.seq_len} ({'; '.join(problems)})"
                )
        self.tables = tables
        self.lengths = [t.seq_len for t in tables]
        self._predictors = [LatencyPredictor(t) for t in tables]

    def table_at(self, seq_len: int) -> LatencyTable:
        """The table measured at exactly `seq_len`."""
        if seq_len not in self.lengths:
            raise LutMismatchError(f"seq_len: {seq_len} was not measured (measured: {self.lengths})")
        return self.tables[self.lengths.index(seq_len)]

    def predict_ms(self, subnet: SubnetConfig, seq_len: int) -> float:
        """Measured lengths exactly; lengths in between by linear interpolation; outside the range refused."""
        if seq_len < self.lengths[0] or seq_len > self.lengths[-1]:
            raise LutMismatchError(
                f"seq_len: {seq_len} is outside the measured lengths [{self.lengths[0]}, {self.lengths[-1]}]"
            )
        high = bisect.bisect_left(self.lengths, seq_len)
        if self.lengths[high] == seq_len:
            return self._predictors[high].predict_ms(subnet)
        low = high - 1
        weight = (seq_len - self.lengths[low]) / (self.lengths[high] - self.lengths[low])
        a, b = self._predictors[low].predict_ms(subnet), self._predictors[high].predict_ms(subnet)
        return a + weight * (b - a)

    def curve(self, subnet: SubnetConfig) -> dict[int, float]:
        """Predicted milliseconds at every measured length."""
        return {length: self.predict_ms(subnet, length) for length in self.lengths}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": FILE_KIND, "format_version": FORMAT_VERSION, "tables": [t.to_dict() for t in self.tables]}

    def save(self, path: str | Path) -> Path:
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> LengthTables:
        """A length-set file, or a single-length LUT file (a set of one)."""
        data = read_json(path, "lut")
        if isinstance(data, dict) and data.get("kind") == FILE_KIND:
            if data.get("format_version") != FORMAT_VERSION:
                raise EftnasError(
                    f"format_version: {path} has {data.get('format_version')!r}, this toolkit reads {FORMAT_VERSION}"
                )
            return cls(LatencyTable.from_dict(t) for t in data.get("tables", []))
        return cls([LatencyTable.from_dict(data)])


def is_length_set(path: str | Path) -> bool:
    data = read_json(path, "lut")
    return isinstance(data, dict) and data.get("kind") == FILE_KIND
