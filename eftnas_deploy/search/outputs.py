"""What a search writes: pareto.json (every front point with its costs) and a Pareto-front PNG."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from eftnas_deploy.core.dimensions import dimension
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.io import write_json
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.metrics import count_macs, count_params
from eftnas_deploy.search.pareto import ParetoPoint

FORMAT_VERSION = 1


def deployed(subnet: SubnetConfig) -> SubnetConfig:
    """`subnet` without the dimensions that cost nothing at inference (no LUT block: merged LoRA ranks)."""
    free = [d for d in subnet.dimensions if dimension(d).block is None]
    if not free:
        return subnet
    return SubnetConfig(**{d: getattr(subnet, d) for d in subnet.dimensions if d not in free})


def point_record(
    point: ParetoPoint,
    geometry: ModelGeometry,
    seq_len: int,
    batch: int,
    latency_ms: Callable[[SubnetConfig], float] | None = None,
) -> dict[str, Any]:
    """A front point with accuracy, predicted latency, MACs and parameters."""
    record = point.to_dict()
    record["macs"] = count_macs(point.subnet, geometry, seq_len=seq_len, batch=batch)
    record["params"] = count_params(deployed(point.subnet), geometry)  # as deployed (LoRA ranks merged away)
    if latency_ms is not None:
        record["predicted_latency_ms"] = latency_ms(point.subnet)
    return record


def write_pareto_json(
    path: str | Path,
    front: Sequence[ParetoPoint],
    geometry: ModelGeometry,
    *,
    objective: str,
    seq_len: int,
    batch: int,
    hypervolume: float,
    cost_scale: float,
    latency_ms: Callable[[SubnetConfig], float] | None = None,
    metadata: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Write pareto.json; returns the point records written."""
    records = [point_record(p, geometry, seq_len, batch, latency_ms) for p in front]
    write_json(
        path,
        {
            "format_version": FORMAT_VERSION,
            "objective": objective,
            "seq_len": seq_len,
            "batch": batch,
            "hypervolume": {
                "value": hypervolume,
                "space": "(-accuracy, cost / cost_scale)",
                "reference_point": {"accuracy": 0.0, "cost": 1.1 * cost_scale},
                "cost_scale": cost_scale,
                "note": "cost_scale is the cost of the largest sub-network of the search space",
            },
            "geometry": geometry.to_dict(),
            **(metadata or {}),
            "points": records,
        },
    )
    return records


def plot_pareto(
    path: str | Path,
    front: Sequence[ParetoPoint],
    evaluated: Sequence[ParetoPoint] = (),
    *,
    cost_label: str = "predicted latency (ms)",
    full: ParetoPoint | None = None,
    smallest: ParetoPoint | None = None,
    budget: float | None = None,
    title: str = "Pareto front",
    accuracy_label: str = "accuracy",
) -> None:
    """Accuracy vs cost: all evaluated points, the front, the full and smallest networks, the budget line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    if evaluated:
        ax.scatter([p.cost for p in evaluated], [p.accuracy for p in evaluated], s=8, c="0.75", label="evaluated")
    ax.step([p.cost for p in front], [p.accuracy for p in front], where="post", c="tab:blue", lw=1)
    ax.scatter([p.cost for p in front], [p.accuracy for p in front], s=18, c="tab:blue", label="Pareto front")
    if full is not None:
        ax.scatter([full.cost], [full.accuracy], marker="*", s=120, c="tab:red", label="full network", zorder=5)
    if smallest is not None:
        ax.scatter(
            [smallest.cost], [smallest.accuracy], marker="v", s=70, c="tab:purple", label="smallest of the space",
            zorder=5,
        )  # fmt: skip
    if budget is not None:
        ax.axvline(budget, ls="--", c="tab:green", label=f"budget {budget:g}")
    ax.set_xlabel(cost_label)
    ax.set_ylabel(accuracy_label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
