"""Range checks of numeric command-line arguments, by destination name, before any command runs.

One table for every subcommand, so `--seq-len -1`, `--batch 0` or `--max-train-rows 0` is refused the
same way everywhere ("seq-len: must be ≥ 1, got -1") instead of being used, or silently meaning "all".
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from eftnas_deploy.core.errors import EftnasError

AT_LEAST_1 = (
    "threads", "batch", "seq_len", "repeats", "calibration_size", "eval_size", "max_length", "samples", "stack",
    "evals", "batch_size", "max_train_rows", "num_targets", "ffn_multiple", "layers", "hidden_size", "heads",
    "intermediate_size", "num_random", "steps",
)  # fmt: skip
AT_LEAST_2 = ("population", "grid")
POSITIVE = ("epochs", "lr", "max_latency_ms", "max_macs", "max_params", "tolerance", "kd_temperature")
NON_NEGATIVE = (
    "warmup", "remeasure_top", "calibration", "min_time", "index", "max_drop", "delta", "save_steps", "seed",
    "kd_task_weight", "kd_distill_weight",
)  # fmt: skip
OPEN_FRACTION = ("held_out_fraction",)  # in (0, 1)
HALF_OPEN_FRACTION = ("skip_fraction",)  # in [0, 1)


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _check(name: str, value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if name in AT_LEAST_1 and value < 1:
        return f"must be ≥ 1, got {value}"
    if name in AT_LEAST_2 and value < 2:
        return f"must be ≥ 2, got {value}"
    if name in POSITIVE and value <= 0:
        return f"must be > 0, got {value}"
    if name in NON_NEGATIVE and value < 0:
        return f"must be ≥ 0, got {value}"
    if name in OPEN_FRACTION and not 0 < value < 1:
        return f"must be in (0, 1), got {value}"
    if name in HALF_OPEN_FRACTION and not 0 <= value < 1:
        return f"must be in [0, 1), got {value}"
    return None


def check_arguments(args: argparse.Namespace) -> None:
    """Raise EftnasError naming the first numeric argument out of its range."""
    for name, value in vars(args).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        problem = _check(name, value)
        if problem:
            raise EftnasError(f"{_flag(name)}: {problem}")
    for name in ("fraction_range", "cost_range"):
        pair = getattr(args, name, None)
        if not pair:
            continue
        low, high = pair
        if not all(math.isfinite(v) and v > 0 for v in pair) or low > high:
            raise EftnasError(f"{_flag(name)}: expected 0 < MIN ≤ MAX, got {low} {high}")
