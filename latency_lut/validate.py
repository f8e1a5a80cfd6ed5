"""Validate LUT predictions against end-to-end measurements of sliced sub-networks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.supernet.slicing import slice_subnet
from exporters.runtime import RuntimeSpec
from latency_lut.export import exported
from latency_lut.measure import TimingSettings, time_onnx
from latency_lut.predict import LatencyPredictor
from latency_lut.table import LatencyTable

TRUSTED_WITHIN_10PCT = 0.9  # a LUT is trusted when at least this share of held-out sub-networks is within ±10%


def error_summary(predicted_us: list[float], measured_us: list[float]) -> dict[str, float]:
    """Median/p95/max absolute % error and the fractions within ±3%, ±5% and ±10%."""
    errors = np.abs(np.asarray(predicted_us) / np.asarray(measured_us) - 1.0) * 100.0
    return {
        "n": len(errors),
        "median_abs_pct": float(np.median(errors)),
        "p95_abs_pct": float(np.percentile(errors, 95)),
        "max_abs_pct": float(errors.max()),
        "within_3pct": float(np.mean(errors <= 3.0 + 1e-9)),
        "within_5pct": float(np.mean(errors <= 5.0 + 1e-9)),
        "within_10pct": float(np.mean(errors <= 10.0 + 1e-9)),
    }


def validation_warning(summary: dict[str, Any]) -> str | None:
    """None when the LUT predicts held-out sub-networks well enough; else a one-line warning saying what to do."""
    if summary["within_10pct"] >= TRUSTED_WITHIN_10PCT:
        return None
    return (
        f"LUT validation FAILED: only {summary['within_10pct']:.0%} of {summary['n']} held-out sub-networks are "
        f"within ±10% (needed {TRUSTED_WITHIN_10PCT:.0%}; median error {summary['median_abs_pct']:.1f}%). "
        "Measure on a quiet machine (nothing else running), use the CPU clock (`--clock cpu`, `lut.clock: cpu`), "
        "or raise the repeats and the minimum timing (`--repeats`, `--min-time`)"
    )


def validate_luts(
    tables: list[LatencyTable],
    supernet: PreTrainedModel,
    subnets: list[SubnetConfig],
    timing: TimingSettings | None = None,
    export_dir: Path | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Slice each sub-network, export it once, and measure it on every table's runtime; one report per table."""
    timing = timing or TimingSettings()
    predictors = [LatencyPredictor(t) for t in tables]
    rows: list[list[dict[str, Any]]] = [[] for _ in tables]
    for i, subnet in enumerate(tqdm(subnets, desc="validate", disable=not progress)):
        dense = slice_subnet(supernet, subnet)
        keep = Path(export_dir) / f"subnet-{i:03d}" if export_dir is not None else None
        with exported(dense, keep) as path:
            for table, predictor, out in zip(tables, predictors, rows):
                spec = RuntimeSpec(
                    table.runtime, table.threads, table.metadata.get("precision_requested", table.precision)
                )
                stats, _ = time_onnx(path, spec, table.batch, table.seq_len, table.geometry.vocab_size, timing)
                out.append(
                    {
                        "subnet": subnet.to_dict(),
                        "predicted_us": predictor.predict_us(subnet),
                        "measured_us": stats.median_us,
                        "measured_iqr_us": stats.iqr_us,
                    }
                )
    reports = []
    for table, out in zip(tables, rows):
        summary = error_summary([r["predicted_us"] for r in out], [r["measured_us"] for r in out])
        reports.append(
            {
                "runtime": table.runtime,
                "precision": table.precision,
                **summary,
                "warning": validation_warning(summary),
                "samples": out,
            }
        )
    return reports


def plot_validation(
    reports: list[dict[str, Any]], path: str | Path, title: str = "LUT prediction vs measurement"
) -> Path:
    """Scatter of predicted vs measured latency per runtime, with the ±5% and ±10% bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6))
    high = max(max(r["measured_us"], r["predicted_us"]) for rep in reports for r in rep["samples"]) / 1e3 * 1.05
    line = np.array([0.0, high])
    ax.plot(line, line, "k-", lw=1, label="exact")
    for pct, style in ((5, "--"), (10, ":")):
        ax.plot(line, line * (1 + pct / 100), "k" + style, lw=0.8, label=f"±{pct}%")
        ax.plot(line, line * (1 - pct / 100), "k" + style, lw=0.8)
    for rep in reports:
        measured = [r["measured_us"] / 1e3 for r in rep["samples"]]
        predicted = [r["predicted_us"] / 1e3 for r in rep["samples"]]
        label = f"{rep['runtime']} ({rep['precision']}): {rep['within_5pct']:.0%} within ±5%"
        ax.scatter(measured, predicted, s=18, label=label)
    ax.set(xlabel="measured latency (ms)", ylabel="predicted latency (ms)", title=title, xlim=(0, high), ylim=(0, high))
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
