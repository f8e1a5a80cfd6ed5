"""A complete search run on a super-network: objectives from evaluation and a cost model, outputs on disk.

Shared by `eftnas-deploy search` and the pipeline: writes pareto.json, pareto.png, selection.json and
search_summary.json into the run dir, and re-measures the finalists end to end on the LUT's runtime.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.io import write_json
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data import PreparedSplit
from eftnas_deploy.metrics import count_macs, count_params
from eftnas_deploy.search.outputs import deployed, plot_pareto, write_pareto_json
from eftnas_deploy.search.pareto import ParetoPoint, select_cheapest_within_delta, select_most_accurate
from eftnas_deploy.search.proxies import METRIC_LABELS, SEARCH_METRICS, HeldOutObjective
from eftnas_deploy.search.searcher import SearchConfig, run_search
from eftnas_deploy.supernet.elastic import SuperNetwork

OBJECTIVES = ("latency", "macs", "params")
SELECTIONS = ("most-accurate", "cheapest-within-delta")
COST_LABELS = {
    "latency": "predicted latency (ms)",
    "macs": "MACs (millions)",
    "params": "parameters (millions)",
}


@dataclass(frozen=True)
class Budget:
    """Hard limits; a sub-network over any of them is infeasible."""

    max_latency_ms: float | None = None
    max_macs: float | None = None
    max_params: float | None = None

    def active(self) -> list[tuple[str, float]]:
        limits = (("latency", self.max_latency_ms), ("macs", self.max_macs), ("params", self.max_params))
        return [(name, value) for name, value in limits if value is not None]


def cost_functions(
    supernet: SuperNetwork, seq_len: int, batch: int, latency_ms: Callable[[SubnetConfig], float] | None
) -> dict[str, Callable[[SubnetConfig], float]]:
    """Cost per objective name; MACs and parameters in millions, latency in ms."""
    return geometry_costs(supernet.geometry, seq_len, batch, latency_ms)


def geometry_costs(
    geometry: ModelGeometry, seq_len: int, batch: int, latency_ms: Callable[[SubnetConfig], float] | None
) -> dict[str, Callable[[SubnetConfig], float]]:
    """`cost_functions` of a model geometry."""
    costs: dict[str, Callable[[SubnetConfig], float]] = {
        "macs": lambda s: count_macs(s, geometry, seq_len=seq_len, batch=batch) / 1e6,
        "params": lambda s: count_params(deployed(s), geometry) / 1e6,
    }
    if latency_ms is not None:
        costs["latency"] = latency_ms
    return costs


def budget_fits(
    geometry: ModelGeometry,
    budget: Budget,
    seq_len: int,
    batch: int,
    latency_ms: Callable[[SubnetConfig], float] | None,
) -> Callable[[SubnetConfig], bool]:
    """A predicate: the sub-network is within every active limit of `budget` (what the search will accept)."""
    costs = geometry_costs(geometry, seq_len, batch, latency_ms)
    limits = budget.active()
    if not limits:
        raise EftnasError("budget: no limit is set (max_latency_ms, max_latency_fraction, max_macs or max_params)")
    for name, _ in limits:
        if name not in costs:
            raise EftnasError(f"max_{name}: a latency budget needs a latency LUT (--lut)")
    return lambda subnet: all(costs[name](subnet) <= limit for name, limit in limits)


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def search_identity(
    objective: str,
    limits: list[tuple[str, float]],
    seq_len: int,
    batch: int,
    latency_ms: Callable[[SubnetConfig], float] | None,
    space: SearchSpace,
    held_out: PreparedSplit,
    metric: str = "score",
) -> dict[str, Any]:
    """What a resumed search must share with the logged trials: their feasibility and costs depend on all of it.

    The budget is recorded in absolute units (a relative budget is resolved before), the LUT by a hash of its
    content; a resume with any of them changed is refused instead of replaying stale feasibility flags or
    accuracies measured by another metric.
    """
    table = getattr(latency_ms, "table", None)
    if latency_ms is None:
        lut = None
    elif table is not None and hasattr(table, "fingerprint"):
        lut = table.fingerprint()
    else:
        lut = f"callable:{getattr(latency_ms, '__qualname__', type(latency_ms).__name__)}"
    identity = {
        "objective": objective,
        "budget": {name: limit for name, limit in limits},
        "seq_len": seq_len,
        "batch": batch,
        "lut": lut,
        "space": _digest({name: [list(c) for c in choices] for name, choices in space.items()}),
        "held_out_rows": len(held_out),
    }
    if metric != "score":  # trial logs written before `metric` existed ranked by the score: they stay resumable
        identity["metric"] = metric
    return identity


def search_supernet(
    supernet: SuperNetwork,
    space: SearchSpace,
    held_out: PreparedSplit,
    out_dir: str | Path,
    config: SearchConfig,
    objective: str = "latency",
    latency_ms: Callable[[SubnetConfig], float] | None = None,
    budget: Budget | None = None,
    seq_len: int = 128,
    batch: int = 1,
    selection: str = "most-accurate",
    delta: float = 0.01,
    eval_batch_size: int = 64,
    metric: str = "distillation",
) -> dict[str, Any]:
    """Search `space` for the accuracy/cost front on `held_out`; returns the summary written to disk.

    `metric` is the front's accuracy axis (`search.proxies`): by default agreement with the largest sub-network,
    which ranked sub-networks better than the held-out score on all-MiniLM-L6-v2/SST-2. Under another metric than
    the score, every front point also carries its held-out task score (`held_out_score`), `delta` is a drop in
    that score, and the summary records the chosen, full and smallest sub-networks' scores (`held_out_scores`).
    """
    if metric not in SEARCH_METRICS:
        raise EftnasError(f"metric: {metric!r} is not one of {SEARCH_METRICS}")
    if objective not in OBJECTIVES:
        raise EftnasError(f"objective: {objective!r} is not one of {OBJECTIVES}")
    if selection not in SELECTIONS:
        raise EftnasError(f"selection: {selection!r} is not one of {SELECTIONS}")
    space.validate(supernet.geometry)
    budget = budget or Budget()
    costs = cost_functions(supernet, seq_len, batch, latency_ms)
    if objective == "latency" and latency_ms is None:
        raise EftnasError("lut: the latency objective needs a latency LUT (--lut), or use --objective macs")
    limits = budget.active()
    for name, _ in limits:
        if name not in costs:
            raise EftnasError(f"max_{name}: a latency budget needs a latency LUT (--lut)")
    smallest = space.smallest()
    for name, limit in limits:
        if costs[name](smallest) > limit:
            raise EftnasError(
                f"max_{name}: budget {limit:g} is below the smallest sub-network of the space "
                f"({costs[name](smallest):.4g}); nothing can be feasible"
            )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    accuracy = HeldOutObjective(supernet, held_out, metric, space.largest(), eval_batch_size)

    def violation(subnet: SubnetConfig) -> float:
        """Largest relative excess over any limit (≤ 0 when feasible), compared against max_cost = 1."""
        return 1.0 + max((costs[name](subnet) - limit) / limit for name, limit in limits)

    full = SubnetConfig.full(supernet.geometry)
    identity = search_identity(objective, limits, seq_len, batch, latency_ms, space, held_out, metric)
    config = dataclasses.replace(
        config, max_cost=1.0 if limits else None, storage=out_dir / "search_trials.jsonl", identity=identity
    )
    result = run_search(
        space, accuracy, costs[objective], config, constraint_fn=violation if limits else None,
        cost_scale=costs[objective](full),
    )  # fmt: skip
    full_point = ParetoPoint(full, accuracy(full), costs[objective](full))
    smallest_point = ParetoPoint(smallest, accuracy(smallest), costs[objective](smallest))  # the trade-off's far end
    cost_limit = dict(limits).get(objective)
    front, scores = _with_task_scores(result.front, full_point, smallest_point, metric, accuracy.task_score)
    if selection == "most-accurate":
        chosen = select_most_accurate(front)
    else:  # delta is a drop in the task score, whatever the metric ranked by
        by_score = [dataclasses.replace(p, accuracy=p.extra.get("held_out_score", p.accuracy)) for p in front]
        picked = select_cheapest_within_delta(by_score, scores["full"], delta)
        chosen = next(p for p in front if p.subnet == picked.subnet)
    scores["chosen"] = chosen.extra.get("held_out_score", chosen.accuracy)
    records = write_pareto_json(
        out_dir / "pareto.json", front, supernet.geometry, objective=objective, seq_len=seq_len,
        batch=batch, hypervolume=result.hypervolume, cost_scale=result.cost_scale, latency_ms=latency_ms,
        metadata={"algorithm": config.algorithm, "evals": config.evals, "budget": dict(limits), "metric": metric},
    )  # fmt: skip
    plot_pareto(
        out_dir / "pareto.png", front, result.points, cost_label=COST_LABELS[objective], full=full_point,
        smallest=smallest_point, budget=cost_limit, accuracy_label=METRIC_LABELS[metric],
        title=f"Pareto front ({config.algorithm}, {result.trials} evaluations)",
    )  # fmt: skip
    chosen.subnet.save(out_dir / "subnet.json")
    summary = {
        "objective": objective,
        "metric": metric,
        "held_out_scores": {name: scores[name] for name in ("chosen", "full", "smallest")},
        "algorithm": config.algorithm,
        "trials": result.trials,
        "new_evaluations": result.new_evaluations,
        "hypervolume": result.hypervolume,
        "hypervolume_reference": {"accuracy": 0.0, "cost": 1.1 * result.cost_scale, "cost_scale": result.cost_scale},
        "budget": dict(limits),
        "selection": {"rule": selection, "delta": delta if selection != "most-accurate" else None},
        "chosen": next(r for r in records if r["subnet"] == chosen.subnet.to_dict()),
        "chosen_index": [p.subnet for p in front].index(chosen.subnet),
        "full_network": {"accuracy": full_point.accuracy, "cost": full_point.cost},
        "smallest_network": {
            "subnet": smallest.to_dict(),
            "accuracy": smallest_point.accuracy,
            "cost": smallest_point.cost,
        },
        "front_size": len(result.front),
        "feasible_evaluated": result.feasible_evaluated,
        "repaired_proposals": result.repaired,
        "warning": result.warning,
    }
    write_json(out_dir / "search_summary.json", summary)
    return summary


def _with_task_scores(
    front: list[ParetoPoint],
    full: ParetoPoint,
    smallest: ParetoPoint,
    metric: str,
    task_score: Callable[[SubnetConfig], float],
) -> tuple[list[ParetoPoint], dict[str, float]]:
    """The front with each point's held-out task score (`held_out_score`) where another metric ranked it, and the
    full and smallest sub-networks' task scores."""
    if metric == "score":
        return front, {"full": full.accuracy, "smallest": smallest.accuracy}
    scored = [dataclasses.replace(p, extra={**p.extra, "held_out_score": task_score(p.subnet)}) for p in front]
    return scored, {"full": task_score(full.subnet), "smallest": task_score(smallest.subnet)}
