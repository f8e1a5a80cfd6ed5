"""Re-measure the finalists of a search end to end on the LUT's runtime (predicted vs measured)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from eftnas_deploy.core.io import write_json
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.supernet.elastic import SuperNetwork

if TYPE_CHECKING:
    from latency_lut.table import LatencyTable


def remeasure_finalists(supernet: SuperNetwork, table: LatencyTable, out_dir: Path, top: int) -> list[dict]:
    """Slice, export and time the `top` most accurate front points on the LUT's runtime (predicted vs measured)."""
    from latency_lut.validate import validate_luts

    pareto = json.loads((out_dir / "pareto.json").read_text())
    points = sorted(pareto["points"], key=lambda p: -p["accuracy"])[:top]
    subnets = [SubnetConfig.from_dict(p["subnet"]) for p in points]
    (report,) = validate_luts([table], supernet.model, subnets)
    measured = {json.dumps(r["subnet"]): r for r in report["samples"]}
    for point in pareto["points"]:
        row = measured.get(json.dumps(point["subnet"]))
        if row is not None:
            point["measured_latency_ms"] = row["measured_us"] / 1e3
            point["prediction_error_pct"] = 100 * (row["predicted_us"] - row["measured_us"]) / row["measured_us"]
    pareto["remeasured"] = {
        "runtime": table.runtime,
        "precision": table.precision,
        "threads": table.threads,
        "points": len(points),
        "median_abs_error_pct": report.get("median_abs_pct"),
    }
    write_json(out_dir / "pareto.json", pareto)
    return report["samples"]
