"""Fast latency prediction from a LUT: fixed part + per-layer block entries + calibrated overhead."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from eftnas_deploy.core.dimensions import dimension, dimension_names
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig
from latency_lut.table import LatencyTable, LutMismatchError


def entries_sum_us(table: LatencyTable, subnet: SubnetConfig) -> float:
    """The fixed part plus every layer's block entry of each dimension (no overhead), straight from the table."""
    return table.fixed_us + sum(
        table.block_us(dimension(name).block, value)
        for name, values in subnet.items()
        if dimension(name).block
        for value in values
    )


class LatencyPredictor:
    """``predict_us(subnet)``: microseconds per call; the searcher calls it thousands of times.

    Block latencies of every width are precomputed into plain lists, so a prediction is one
    list look-up per layer and dimension plus an affine overhead correction.
    """

    def __init__(self, table: LatencyTable) -> None:
        self.table = table
        self.num_layers = table.geometry.num_layers
        self._blocks = {
            name: table.block_table(dimension(name).block) for name in dimension_names() if dimension(name).block
        }
        self._fixed = table.fixed_us
        self._correct = table.overhead.correct

    @classmethod
    def from_file(
        cls, path: str | Path, geometry: ModelGeometry | None = None, allow_approximate: bool = False, **asked: Any
    ) -> LatencyPredictor:
        """Load a LUT checked against `geometry` (and runtime/threads/seq_len/batch if given)."""
        return cls(LatencyTable.load(path, allow_approximate=allow_approximate, geometry=geometry, **asked))

    def predict_us(self, subnet: SubnetConfig) -> float:
        if subnet.num_layers != self.num_layers:
            raise LutMismatchError(
                f"{subnet.dimensions[0]}: {subnet.num_layers} layers given, the LUT's model has {self.num_layers}"
            )
        total = self._fixed
        try:
            for name, values in subnet.items():
                block = self._blocks.get(name)
                for value in values if block is not None else ():
                    total += block[value]
        except IndexError:
            raise LutMismatchError(self._range_message(subnet)) from None
        if math.isnan(total):
            raise LutMismatchError(self._range_message(subnet))
        return self._correct(total)

    def predict_ms(self, subnet: SubnetConfig) -> float:
        return self.predict_us(subnet) / 1e3

    def __call__(self, subnet: SubnetConfig) -> float:
        """Predicted latency in milliseconds."""
        return self.predict_ms(subnet)

    def _range_message(self, subnet: SubnetConfig) -> str:
        for name, widths in subnet.items():
            if not dimension(name).block:
                continue
            for i, w in enumerate(widths):
                try:
                    self.table.block_us(dimension(name).block, w)
                except LutMismatchError as exc:
                    return f"layer {i}: {exc}"
        return f"{subnet}: outside the LUT's measured widths"
