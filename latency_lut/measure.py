"""Measure a latency LUT on this machine.

Every entry is measured through the deployment path (dense HF model -> optimum ONNX export -> ONNX
Runtime session or OpenVINO compiled model), so graph fusions and mask preparation are those of the
final model. A block's entry is the latency *delta* it adds inside a real model: a stack of `stack`
identical layers holding only that block is timed, the empty model (all blocks skipped: embeddings,
mask preparation and task head, the fixed part) is subtracted, and the rest is divided by `stack`.
Residual adds and LayerNorms belong to their block, so entries add up layer by layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
from transformers import PretrainedConfig

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from exporters.runtime import CLOCKS, RuntimeSpec, TimingStats, check_threads, runtime_version, time_model
from latency_lut.export import exported, open_at_shape, random_dense_model
from latency_lut.table import LatencyTable, Overhead, default_metadata, width_grid


@dataclass(frozen=True)
class TimingSettings:
    """How long each model is timed, and how many identical layers a block stack has."""

    warmup: int = 5
    repeats: int = 20
    min_time_s: float = 1.0
    stack: int = 6
    clock: str = "wall"

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.warmup < 0 or self.stack < 1:
            raise EftnasError(f"timing: repeats/stack must be >= 1 and warmup >= 0, got {self}")
        if self.clock not in CLOCKS:
            raise EftnasError(f"clock: {self.clock!r} is not supported (expected one of {sorted(CLOCKS)})")

    def check(self, spec: RuntimeSpec) -> None:
        if self.clock == "cpu" and spec.threads != 1:
            raise EftnasError(f"clock: 'cpu' time equals latency only for 1 thread, got threads={spec.threads}")


def time_onnx(
    path: Path, spec: RuntimeSpec, batch: int, seq_len: int, vocab_size: int, timing: TimingSettings
) -> tuple[TimingStats, str]:
    """Median/spread of one exported model and the effective precision it ran at."""
    timing.check(spec)
    compiled, feeds = open_at_shape(path, spec, batch, seq_len, vocab_size)
    stats = time_model(compiled, feeds, timing.warmup, timing.repeats, timing.min_time_s, timing.clock)
    return stats, compiled.effective_precision


def time_subnet(
    config: PretrainedConfig,
    geometry: ModelGeometry,
    subnet: SubnetConfig,
    spec: RuntimeSpec,
    seq_len: int,
    batch: int,
    timing: TimingSettings,
) -> tuple[TimingStats, str]:
    """Export the dense model of `subnet` (random weights) and time it end to end."""
    model = random_dense_model(config, geometry, subnet)
    with exported(model) as path:
        return time_onnx(path, spec, batch, seq_len, geometry.vocab_size, timing)


def stack_subnet(kind: str, width: int, stack: int) -> SubnetConfig:
    """`stack` layers holding only one block kind at `width` (0 everywhere: the fixed part alone)."""
    other = (0,) * stack
    return (
        SubnetConfig(heads=(width,) * stack, ffn=other)
        if kind == "attention"
        else SubnetConfig(other, (width,) * stack)
    )


def build_lut(
    config: PretrainedConfig,
    geometry: ModelGeometry,
    spec: RuntimeSpec,
    seq_len: int = 128,
    batch: int = 1,
    space: SearchSpace | None = None,
    grid: int | None = None,
    timing: TimingSettings | None = None,
    calibration_samples: int = 12,
    seed: int = 0,
    progress: bool = True,
) -> LatencyTable:
    """Measure the fixed part, every (or a `grid` of) attention/FFN widths of `space`, then calibrate."""
    timing = timing or TimingSettings()
    timing.check(spec)
    cores = check_threads(spec.threads)
    space = (space or SearchSpace.full_range(geometry)).validate(geometry)
    widths = {
        "attention": width_grid({h for c in space.heads for h in c if h > 0}, grid),
        "ffn": width_grid({f for c in space.ffn for f in c if f > 0}, grid),
    }
    jobs = [("fixed", 0)] + [(kind, w) for kind in ("attention", "ffn") for w in widths[kind]]
    start = time.perf_counter()
    results: dict[tuple[str, int], TimingStats] = {}
    timer = None
    precision = spec.precision
    bar = tqdm(total=len(jobs) + calibration_samples, desc=f"LUT {spec.runtime}", disable=not progress)
    for kind, width in jobs:
        bar.set_postfix_str(f"{kind} {width}")
        subnet = stack_subnet(kind, width, timing.stack)
        results[kind, width], precision = time_subnet(config, geometry, subnet, spec, seq_len, batch, timing)
        timer = results[kind, width].timer
        bar.update()
    fixed = results["fixed", 0]
    entries = {
        kind: {
            w: {
                "median_us": max(0.0, (results[kind, w].median_us - fixed.median_us) / timing.stack),
                "spread_us": (results[kind, w].iqr_us + fixed.iqr_us) / timing.stack,
                "stack_median_us": results[kind, w].median_us,
            }
            for w in widths[kind]
        }
        for kind in ("attention", "ffn")
    }
    table = LatencyTable(
        geometry=geometry,
        runtime=spec.runtime,
        runtime_version=runtime_version(spec.runtime),
        threads=spec.threads,
        precision=precision,
        seq_len=seq_len,
        batch=batch,
        fixed_us=fixed.median_us,
        entries=entries,
        metadata=default_metadata(
            {
                "precision_requested": spec.precision,
                "threads_used": spec.threads,
                **cores,
                "shape_mode": "static",
                "grid": grid,
                "timing": {
                    "warmup": timing.warmup,
                    "repeats": timing.repeats,
                    "min_time_s": timing.min_time_s,
                    "clock": timing.clock,
                    "timer": timer,
                },
                "stack_layers": timing.stack,
                "fixed_spread_us": fixed.iqr_us,
                "search_space": {name: [list(c) for c in choices] for name, choices in space.items()},
            }
        ),
    )
    if calibration_samples:
        from eftnas_deploy.core.space import sample_across_cost

        subnets = sample_across_cost(space, calibration_samples, seed=seed + 7919)
        measured = []
        for subnet in subnets:
            bar.set_postfix_str("calibration")
            stats, _ = time_subnet(config, geometry, subnet, spec, seq_len, batch, timing)
            measured.append(stats.median_us)
            bar.update()
        table.overhead = fit_overhead(table, subnets, measured)
    bar.close()
    table.metadata["build_time_s"] = round(time.perf_counter() - start, 2)
    return table


PLAUSIBLE_SCALE = (-0.5, 1.0)  # gain 1 + scale within [0.5, 2]
MIN_POINTS_FOR_SQUARE = 8  # calibration sub-networks needed before the square term is fitted (3 unknowns)


def fit_overhead(table: LatencyTable, subnets: list[SubnetConfig], measured_us: list[float]) -> Overhead:
    """Fit ``measured - entries = constant + scale * entries (+ square * entries**2)`` over end-to-end measurements.

    Least squares on the *relative* residual (weights 1/measured): the error that matters is a percentage,
    and small sub-networks would otherwise count for nothing next to large ones. With at least
    `MIN_POINTS_FOR_SQUARE` measurements a square term is fitted too (on a 4-layer model it raised the
    share of held-out sub-networks within ±3% from 0.70 to 0.86 on ONNX Runtime, 0.65 to 0.84 on OpenVINO);
    it is kept only if predictions still grow with the entries over the calibrated range. A fitted gain
    outside [0.5, 2] means timer noise dominates the calibration (microsecond-sized blocks): then only the
    constant is fitted, so predictions keep growing with the entries. If the correction would send a
    prediction at half the smallest calibrated entries negative (entries several times the end-to-end time),
    one gain (measured / entries) replaces it.
    """
    from latency_lut.predict import entries_sum_us

    sums = np.array([entries_sum_us(table, s) for s in subnets])
    measured = np.asarray(measured_us, dtype=float)
    residual = measured - sums
    weights = 1.0 / measured
    scale, constant, square = 0.0, float(np.average(residual, weights=weights)), 0.0
    if len(subnets) >= 2 and np.ptp(sums) > 0:
        fitted_scale, fitted_constant = np.polyfit(sums, residual, 1, w=weights)
        if PLAUSIBLE_SCALE[0] <= fitted_scale <= PLAUSIBLE_SCALE[1]:
            scale, constant = float(fitted_scale), float(fitted_constant)
            if len(subnets) >= MIN_POINTS_FOR_SQUARE:
                scale, constant, square = _with_square(sums, residual, weights, (scale, constant, 0.0))
    if len(subnets) and not _positive_below(sums, scale, constant, square):
        # The entries overstate the end-to-end time several-fold (blocks timed on a loaded machine): an additive
        # correction that large turns smaller sub-networks' predictions negative. One gain keeps them positive.
        scale, constant, square = float(np.average(measured / sums, weights=sums / measured)) - 1.0, 0.0, 0.0
    calibration = [
        {"subnet": s.to_dict(), "measured_us": float(m), "entries_us": float(e)}
        for s, m, e in zip(subnets, measured_us, sums)
    ]
    return Overhead(constant_us=float(constant), scale=float(scale), calibration=calibration, square_per_us=square)


def _positive_below(sums: np.ndarray, scale: float, constant: float, square: float) -> bool:
    """Whether predictions stay positive down to half the smallest calibrated entries sum."""
    low = 0.5 * float(sums.min())
    return low * (1.0 + scale) + constant + square * low * low > 0


def _with_square(
    sums: np.ndarray, residual: np.ndarray, weights: np.ndarray, affine: tuple[float, float, float]
) -> tuple[float, float, float]:
    """(scale, constant, square) of the weighted quadratic fit, or `affine` if the curve turns down in range."""
    square, scale, constant = (float(c) for c in np.polyfit(sums, residual, 2, w=weights))
    slopes = [1.0 + scale + 2.0 * square * s for s in (0.0, float(sums.max()))]
    if min(slopes) <= 0 or not PLAUSIBLE_SCALE[0] <= min(slopes) - 1 <= max(slopes) - 1 <= PLAUSIBLE_SCALE[1]:
        return affine
    return scale, constant, square
