"""Pareto fronts of (accuracy up, cost down), their hypervolume, and rules that pick one answer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.subnet import SubnetConfig


@dataclass(frozen=True)
class ParetoPoint:
    """One evaluated sub-network: its accuracy (higher is better) and cost (lower is better)."""

    subnet: SubnetConfig
    accuracy: float
    cost: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"subnet": self.subnet.to_dict(), "accuracy": self.accuracy, "cost": self.cost, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParetoPoint:
        known = {"subnet", "accuracy", "cost"}
        missing = known - set(data)
        if missing:
            raise EftnasError(f"pareto point: missing field(s) {sorted(missing)}")
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(SubnetConfig.from_dict(data["subnet"]), float(data["accuracy"]), float(data["cost"]), extra)


def dominates(a: ParetoPoint, b: ParetoPoint) -> bool:
    return a.accuracy >= b.accuracy and a.cost <= b.cost and (a.accuracy > b.accuracy or a.cost < b.cost)


def non_dominated(points: Iterable[ParetoPoint]) -> list[ParetoPoint]:
    """The Pareto front, one point per sub-network (its last evaluation) and per objective pair, sorted by cost.

    pymoo's non-dominated sorting on (−accuracy, cost); of sub-networks with equal objectives the first is kept.
    """
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    by_objectives: dict[tuple[float, float], ParetoPoint] = {}
    for point in {p.subnet: p for p in points}.values():
        by_objectives.setdefault((point.accuracy, point.cost), point)
    unique = list(by_objectives.values())
    if len(unique) <= 1:
        return unique
    objectives = np.array([[-p.accuracy, p.cost] for p in unique], dtype=float)
    front = NonDominatedSorting().do(objectives, only_non_dominated_front=True)
    return sorted((unique[i] for i in front), key=lambda p: (p.cost, -p.accuracy))


def hypervolume(points: Sequence[ParetoPoint], cost_scale: float, accuracy_ref: float = 0.0) -> float:
    """Area dominated by the front in (−accuracy, cost / cost_scale) space.

    Reference point: (accuracy = `accuracy_ref`, cost = 1.1 × `cost_scale`), where `cost_scale` is
    the full network's cost; so the value is in [0, 1.1 × (1 − accuracy_ref)] for accuracies ≤ 1.
    """
    from pymoo.indicators.hv import HV

    if cost_scale <= 0:
        raise EftnasError(f"cost_scale: must be positive, got {cost_scale}")
    if not points:
        return 0.0
    objectives = np.array([[-p.accuracy, p.cost / cost_scale] for p in points], dtype=float)
    return float(HV(ref_point=np.array([-accuracy_ref, 1.1]))(objectives))


def select_most_accurate(points: Iterable[ParetoPoint], max_cost: float | None = None) -> ParetoPoint:
    """The most accurate point within the budget (ties: the cheaper)."""
    feasible = [p for p in points if max_cost is None or p.cost <= max_cost]
    if not feasible:
        raise EftnasError(f"max_cost: no sub-network within the budget {max_cost}")
    return max(feasible, key=lambda p: (p.accuracy, -p.cost))


def select_cheapest_within_delta(
    points: Iterable[ParetoPoint], reference_accuracy: float, delta: float, max_cost: float | None = None
) -> ParetoPoint:
    """EFTNAS' rule: the cheapest point with accuracy ≥ reference − delta (ties: the more accurate)."""
    if delta < 0:
        raise EftnasError(f"delta: must be non-negative, got {delta}")
    good = [p for p in points if p.accuracy >= reference_accuracy - delta and (max_cost is None or p.cost <= max_cost)]
    if not good:
        raise EftnasError(f"delta: no sub-network reaches accuracy {reference_accuracy - delta:.4f}")
    return min(good, key=lambda p: (p.cost, -p.accuracy))
