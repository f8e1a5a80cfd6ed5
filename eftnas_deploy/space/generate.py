"""Automatic search-space boundaries from importance at cost targets (EFTNAS stage 2).

Scores are standardised per unit type (heads, neurons) so one global threshold compares both.
For each cost target, a binary search over the threshold finds the largest kept set at or below
the target; remaining budget is then topped up with the best units that still fit. Each layer's
kept head count and FFN width at every target, plus the full width, become its choices.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from eftnas_deploy.core.errors import SearchSpaceError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.importance.scores import ImportanceScores
from eftnas_deploy.metrics import count_macs

CostFn = Callable[[SubnetConfig], float]


def macs_cost(geometry: ModelGeometry, seq_len: int = 128) -> CostFn:
    """The default cost: MACs of one sequence of `seq_len` tokens."""

    def cost(subnet: SubnetConfig) -> float:
        return float(count_macs(subnet, geometry, seq_len=seq_len))

    cost.__name__ = f"macs@seq{seq_len}"
    return cost


def evenly_spaced_targets(low: float, high: float, count: int) -> list[float]:
    """`count` targets from `low` to `high` inclusive."""
    if count < 1:
        raise SearchSpaceError(f"num_targets: at least one target is required, got {count}")
    if low > high:
        raise SearchSpaceError(f"cost range: min {low} is larger than max {high}")
    if count == 1:
        return [float(high)]
    return [low + (high - low) * i / (count - 1) for i in range(count)]


@dataclass(frozen=True)
class _Unit:
    score: float
    kind: str  # "heads" or "ffn"
    layer: int


def _standardise(values: torch.Tensor) -> torch.Tensor:
    values = values.double()
    std = values.std() if values.numel() > 1 else torch.tensor(0.0)
    return (values - values.mean()) / (std if std > 0 else 1.0)


class _Budget:
    """Turns per-layer kept unit counts into a SubnetConfig (skip rule, FFN rounding) and its cost."""

    def __init__(self, geometry: ModelGeometry, cost_fn: CostFn, skip_fraction: float, ffn_multiple: int) -> None:
        self.geometry, self.cost_fn = geometry, cost_fn
        self.skip_fraction, self.ffn_multiple = skip_fraction, ffn_multiple

    def subnet(self, heads: Sequence[int], ffn: Sequence[int]) -> SubnetConfig:
        g = self.geometry
        kept_heads = [0 if h < self.skip_fraction * g.num_heads else h for h in heads]
        kept_ffn = []
        for width in ffn:
            if width < self.skip_fraction * g.intermediate_size or width == 0:
                kept_ffn.append(0)
                continue
            m = self.ffn_multiple
            kept_ffn.append(min(g.intermediate_size, max(m, m * round(width / m))))
        return SubnetConfig(heads=kept_heads, ffn=kept_ffn)

    def cost(self, heads: Sequence[int], ffn: Sequence[int]) -> float:
        return self.cost_fn(self.subnet(heads, ffn))


def _ranking(scores: ImportanceScores) -> list[_Unit]:
    """All heads and neurons, best first, on one standardised scale (ties keep layer/unit order)."""
    units = []
    for kind, table in (("heads", scores.heads), ("ffn", scores.ffn)):
        z = _standardise(table)
        for layer in range(table.shape[0]):
            units.extend(_Unit(float(v), kind, layer) for v in z[layer])
    return sorted(units, key=lambda u: -u.score)


def _counts_of(units: Sequence[_Unit], num_layers: int) -> tuple[list[int], list[int]]:
    heads, ffn = [0] * num_layers, [0] * num_layers
    for u in units:
        (heads if u.kind == "heads" else ffn)[u.layer] += 1
    return heads, ffn


def subnet_at_target(
    ranking: Sequence[_Unit], budget: _Budget, target: float, num_layers: int
) -> tuple[SubnetConfig, float, float]:
    """The kept sub-network closest to `target`; returns (subnet, cost, threshold)."""
    lo, hi = 0, len(ranking)  # invariant: cost(top lo) <= target < cost(top hi + 1) once settled
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if budget.cost(*_counts_of(ranking[:mid], num_layers)) <= target:
            lo = mid
        else:
            hi = mid - 1
    threshold = ranking[lo - 1].score if lo else float("inf")
    # Top up: the best remaining units that still fit (prefix order within each layer is kept).
    heads, ffn = _counts_of(ranking[:lo], num_layers)
    closed: set[tuple[str, int]] = set()
    for unit in ranking[lo:]:
        key = (unit.kind, unit.layer)
        if key in closed:
            continue
        counts = heads if unit.kind == "heads" else ffn
        counts[unit.layer] += 1
        if budget.cost(heads, ffn) > target:
            counts[unit.layer] -= 1
            closed.add(key)
    candidates = [budget.subnet(heads, ffn)]
    if lo < len(ranking):
        candidates.append(budget.subnet(*_counts_of(ranking[: lo + 1], num_layers)))
    best = min(candidates, key=lambda s: abs(budget.cost_fn(s) - target))
    return best, budget.cost_fn(best), threshold


def generate_search_space(
    scores: ImportanceScores,
    targets: Sequence[float],
    cost_fn: CostFn | None = None,
    tolerance: float = 0.02,
    skip_fraction: float = 0.02,
    ffn_multiple: int = 1,
    seq_len: int = 128,
) -> SearchSpace:
    """Per-layer choices from the sub-networks kept at each cost target (importance must be sorted).

    `cost_fn` defaults to MACs at `seq_len`. Every target must lie within [cost of the smallest
    sub-network, cost of the full model] and be reachable within `tolerance` (relative).
    """
    geometry = scores.geometry
    if not targets:
        raise SearchSpaceError("targets: at least one cost target is required (the space would be empty)")
    if not 0 <= skip_fraction < 1:
        raise SearchSpaceError(f"skip_fraction: must be in [0, 1), got {skip_fraction}")
    if ffn_multiple < 1 or ffn_multiple > geometry.intermediate_size:
        raise SearchSpaceError(f"ffn_multiple: must be in [1, {geometry.intermediate_size}], got {ffn_multiple}")
    if tolerance <= 0:
        raise SearchSpaceError(f"tolerance: must be positive, got {tolerance}")
    if not scores.is_sorted():
        raise SearchSpaceError(
            "importance: scores are not in descending order per layer; reorder the model first "
            "(reorder_by_importance) so that kept units are prefixes"
        )
    cost_fn = cost_fn or macs_cost(geometry, seq_len)
    budget = _Budget(geometry, cost_fn, skip_fraction, ffn_multiple)
    zero = [0] * geometry.num_layers
    low, high = cost_fn(SubnetConfig(zero, zero)), cost_fn(SubnetConfig.full(geometry))
    for i, target in enumerate(targets):
        if not low <= target <= high:
            raise SearchSpaceError(f"targets[{i}]: cost {target:g} is outside [{low:g}, {high:g}] (smallest, full)")
    start = time.perf_counter()
    ranking = _ranking(scores)
    heads_choices = [{geometry.num_heads} for _ in range(geometry.num_layers)]
    ffn_choices = [{geometry.intermediate_size} for _ in range(geometry.num_layers)]
    found = []
    for i, target in enumerate(targets):
        subnet, cost, threshold = subnet_at_target(ranking, budget, target, geometry.num_layers)
        error = abs(cost - target) / target if target else abs(cost)
        if error > tolerance:
            raise SearchSpaceError(
                f"targets[{i}]: closest reachable cost {cost:g} is {100 * error:.2f}% from {target:g}, "
                f"more than the tolerance {100 * tolerance:g}% (raise the tolerance or lower ffn_multiple)"
            )
        for layer, (h, f) in enumerate(zip(subnet.heads, subnet.ffn)):
            heads_choices[layer].add(h)
            ffn_choices[layer].add(f)
        found.append(
            {
                "target": target,
                "cost": cost,
                "relative_error": error,
                "threshold": threshold,
                "subnet": subnet.to_dict(),
            }
        )
    metadata = {
        "generator": "eftnas-importance-threshold",
        "cost": getattr(cost_fn, "__name__", "custom"),
        "cost_range": [low, high],
        "targets": found,
        "tolerance": tolerance,
        "skip_fraction": skip_fraction,
        "ffn_multiple": ffn_multiple,
        "criterion": scores.criterion,
        "model_fingerprint": scores.fingerprint,
        "geometry": geometry.to_dict(),
        "generation_s": round(time.perf_counter() - start, 4),
    }
    return SearchSpace(heads=heads_choices, ffn=ffn_choices, metadata=metadata).validate(geometry)
