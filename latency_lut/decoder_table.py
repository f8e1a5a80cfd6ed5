"""The latency LUT of a decoder LLM's generation: time to first token (prefill) and time per generated token.

Two phases, each with its own entries: ``prefill`` (one forward over a prompt of `prompt_len` tokens, the
time to first token) and ``decode`` (one step with `context_len` tokens in the KV cache, the time per
token). A phase holds the fixed part (embeddings, final norm, LM head), one entry per attention width (KV
groups, uniform over the built layers) and per MLP width (interpolated between measured widths), and an
overhead fitted on end-to-end generation of calibration sub-networks. A layer that drops both blocks is not
built and costs nothing; a built layer costs its attention entry plus its MLP entry (0 when dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eftnas_deploy.core.decoder_family import DecoderGeometry
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.io import read_json, write_json
from eftnas_deploy.core.subnet import SubnetConfig
from latency_lut.table import LutMismatchError, Overhead, width_grid

DECODER_FORMAT_VERSION = 1
PHASES = ("prefill", "decode")
BLOCKS = ("attention", "ffn")


def built_layers(subnet: SubnetConfig) -> list[int]:
    """Layers a dense model of `subnet` builds: those keeping a block."""
    return [i for i, (groups, width) in enumerate(zip(subnet.heads, subnet.ffn)) if groups or width]


def check_exportable(geometry: DecoderGeometry, subnet: SubnetConfig) -> int:
    """The KV groups of `subnet`; EftnasError unless it fits `geometry` and the stateful export can take it
    (the same non-zero KV groups in every built layer; MLP widths per layer and depth stay elastic)."""
    geometry.validate(subnet)
    layers = built_layers(subnet)
    if not layers:
        raise EftnasError("heads/ffn: the sub-network builds no layer (every block is dropped); keep at least one")
    groups = sorted({subnet.heads[i] for i in layers})
    if len(groups) != 1 or groups[0] == 0:
        per_layer = [subnet.heads[i] for i in layers]
        raise EftnasError(
            f"heads: KV groups per built layer are {per_layer}; the stateful decoder export needs the same non-zero "
            "number in every built layer (drop a layer whole with heads=0 and ffn=0, or vary ffn instead)"
        )
    return groups[0]


@dataclass
class PhaseTable:
    """One phase's entries (µs): fixed part, attention by KV groups, MLP by width, and the calibrated overhead."""

    fixed_us: float
    entries: dict[str, dict[int, dict[str, float]]]
    overhead: Overhead = field(default_factory=Overhead)

    def __post_init__(self) -> None:
        for kind in BLOCKS:
            if not any(w > 0 for w in self.entries.get(kind, {})):
                raise EftnasError(f"entries.{kind}: the decoder LUT has no measured {kind} width")

    def measured(self, kind: str) -> list[int]:
        return sorted(w for w in self.entries[kind] if w > 0)

    def block_us(self, kind: str, width: int) -> float:
        """One block's latency (0 = dropped): attention at a measured KV-group count, MLP interpolated."""
        if width == 0:
            return 0.0
        table, measured = self.entries[kind], self.measured(kind)
        if width in table:
            return float(table[width]["median_us"])
        if kind == "attention" or not measured[0] <= width <= measured[-1]:
            raise LutMismatchError(f"{kind}: width {width} was not measured (measured: {measured})")
        return float(np.interp(width, measured, [table[w]["median_us"] for w in measured]))

    def entries_sum_us(self, subnet: SubnetConfig) -> float:
        """Fixed part plus every built layer's attention and MLP entries, before the overhead."""
        return self.fixed_us + sum(
            self.block_us("attention", subnet.heads[i]) + self.block_us("ffn", subnet.ffn[i])
            for i in built_layers(subnet)
        )

    def predict_us(self, subnet: SubnetConfig) -> float:
        return self.overhead.correct(self.entries_sum_us(subnet))

    def to_dict(self) -> dict[str, Any]:
        entries = {kind: {str(w): s for w, s in sorted(self.entries[kind].items())} for kind in BLOCKS}
        return {"fixed_us": self.fixed_us, "entries": entries, "overhead": self.overhead.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhaseTable:
        entries = {kind: {int(w): dict(s) for w, s in data["entries"][kind].items()} for kind in BLOCKS}
        return cls(float(data["fixed_us"]), entries, Overhead.from_dict(data.get("overhead", {})))


@dataclass
class DecoderLatencyTable:
    """Prefill and decode LUTs of one decoder geometry on one target (runtime, threads, precision, lengths)."""

    geometry: DecoderGeometry
    runtime: str
    runtime_version: str
    threads: int
    precision: str
    prompt_len: int
    context_len: int
    new_tokens: int
    phases: dict[str, PhaseTable]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [p for p in PHASES if p not in self.phases]
        if missing:
            raise EftnasError(f"phases: the decoder LUT lacks {missing}")

    def predict_us(self, subnet: SubnetConfig, phase: str) -> float:
        """Predicted µs of one phase: prefill (time to first token) or decode (one generated token)."""
        check_exportable(self.geometry, subnet)
        return self.phases[phase].predict_us(subnet)

    def predict_ttft_ms(self, subnet: SubnetConfig) -> float:
        return self.predict_us(subnet, "prefill") / 1e3

    def predict_ms_per_token(self, subnet: SubnetConfig) -> float:
        return self.predict_us(subnet, "decode") / 1e3

    def check(self, geometry: DecoderGeometry | None = None, **asked: Any) -> DecoderLatencyTable:
        """This table, or LutMismatchError naming what differs from `geometry` and the asked target fields
        (runtime, threads, precision, prompt_len, context_len, new_tokens)."""
        problems = [] if geometry is None or geometry == self.geometry else [f"geometry {self.geometry} != {geometry}"]
        for name, value in asked.items():
            if value is not None and getattr(self, name) != value:
                problems.append(f"{name} {getattr(self, name)!r} != {value!r}")
        if problems:
            raise LutMismatchError("decoder LUT does not match the target (" + "; ".join(problems) + ")")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": DECODER_FORMAT_VERSION,
            "kind": "decoder-generation",
            "metadata": self.metadata,
            "target": {
                "runtime": self.runtime,
                "runtime_version": self.runtime_version,
                "threads": self.threads,
                "precision": self.precision,
                "prompt_len": self.prompt_len,
                "context_len": self.context_len,
                "new_tokens": self.new_tokens,
            },
            "geometry": self.geometry.to_dict(),
            "unit": "us",
            "phases": {name: self.phases[name].to_dict() for name in PHASES},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecoderLatencyTable:
        if not isinstance(data, dict) or data.get("kind") != "decoder-generation":
            raise EftnasError("lut: not a decoder generation LUT (kind != 'decoder-generation')")
        if data.get("format_version") != DECODER_FORMAT_VERSION:
            raise EftnasError(
                f"format_version: LUT has {data.get('format_version')!r}, this toolkit reads {DECODER_FORMAT_VERSION}"
            )
        target = data["target"]
        return cls(
            geometry=DecoderGeometry(**data["geometry"]),
            runtime=target["runtime"],
            runtime_version=target["runtime_version"],
            threads=int(target["threads"]),
            precision=target["precision"],
            prompt_len=int(target["prompt_len"]),
            context_len=int(target["context_len"]),
            new_tokens=int(target["new_tokens"]),
            phases={name: PhaseTable.from_dict(data["phases"][name]) for name in PHASES},
            metadata=dict(data.get("metadata", {})),
        )

    def save(self, path: str | Path) -> Path:
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, geometry: DecoderGeometry | None = None, **asked: Any) -> DecoderLatencyTable:
        """Read a decoder LUT (one-line error for a malformed file) and `check` it against what is asked."""
        data = read_json(path, "lut")
        try:
            table = cls.from_dict(data)
        except EftnasError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise EftnasError(f"lut: {path} is not a valid decoder LUT ({type(exc).__name__}: {exc})") from None
        return table.check(geometry, **asked)


def ffn_grid(geometry: DecoderGeometry, grid: int) -> list[int]:
    """`grid` MLP widths evenly spread over [intermediate_size / 16, intermediate_size] (both ends included)."""
    if grid < 2:
        raise EftnasError(f"grid: at least 2 MLP widths are needed to interpolate, got {grid}")
    low = max(1, geometry.intermediate_size // 16)
    return width_grid({int(w) for w in np.round(np.linspace(low, geometry.intermediate_size, grid))}, None)
