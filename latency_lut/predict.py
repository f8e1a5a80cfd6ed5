"""Fast latency prediction from a LUT: fixed part + per-layer block entries + calibrated overhead."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig
from latency_lut.table import LatencyTable, LutMismatchError


def entries_sum_us(table: LatencyTable, subnet: SubnetConfig) -> float:
    """The fixed part plus every layer's attention and FFN entry (no overhead), straight from the table."""
    return (
        table.fixed_us
        + sum(table.block_us("attention", h) for h in subnet.heads)
        + sum(table.block_us("ffn", f) for f in subnet.ffn)
    )


class LatencyPredictor:
    """``predict_us(subnet)``: microseconds per call; the searcher calls it thousands of times.

    Block latencies of every width are precomputed into plain lists, so a prediction is two
    list look-ups per layer plus an affine overhead correction.
    """

    def __init__(self, table: LatencyTable) -> None:
        self.table = table
        self.num_layers = table.geometry.num_layers
        self._attention = table.block_table("attention")
        self._ffn = table.block_table("ffn")
        self._fixed = table.fixed_us
        self._gain = 1.0 + table.overhead.scale
        self._constant = table.overhead.constant_us

    @classmethod
    def from_file(
        cls, path: str | Path, geometry: ModelGeometry | None = None, allow_approximate: bool = False, **asked: Any
    ) -> LatencyPredictor:
        """Load a LUT checked against `geometry` (and runtime/threads/seq_len/batch if given)."""
        return cls(LatencyTable.load(path, allow_approximate=allow_approximate, geometry=geometry, **asked))

    def predict_us(self, subnet: SubnetConfig) -> float:
        if len(subnet.heads) != self.num_layers:
            raise LutMismatchError(f"heads: {len(subnet.heads)} layers given, the LUT's model has {self.num_layers}")
        attention, ffn = self._attention, self._ffn
        total = self._fixed
        try:
            for h, f in zip(subnet.heads, subnet.ffn):
                total += attention[h] + ffn[f]
        except IndexError:
            raise LutMismatchError(self._range_message(subnet)) from None
        if math.isnan(total):
            raise LutMismatchError(self._range_message(subnet))
        return total * self._gain + self._constant

    def predict_ms(self, subnet: SubnetConfig) -> float:
        return self.predict_us(subnet) / 1e3

    def __call__(self, subnet: SubnetConfig) -> float:
        """Predicted latency in milliseconds."""
        return self.predict_ms(subnet)

    def _range_message(self, subnet: SubnetConfig) -> str:
        for kind, widths in (("attention", subnet.heads), ("ffn", subnet.ffn)):
            for i, w in enumerate(widths):
                try:
                    self.table.block_us(kind, w)
                except LutMismatchError as exc:
                    return f"layer {i}: {exc}"
        return f"{subnet}: outside the LUT's measured widths"
