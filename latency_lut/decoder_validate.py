"""Validate a decoder generation LUT: predicted vs measured time to first token and time per token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.supernet.decoder import DecoderSuperNetwork
from exporters.runtime import RuntimeSpec
from latency_lut.decoder import measure_generation
from latency_lut.decoder_table import PHASES, DecoderLatencyTable, check_exportable
from latency_lut.validate import error_summary, validation_warning

PHASE_LABELS = {"prefill": "time to first token", "decode": "time per token"}


def validate_decoder_lut(
    table: DecoderLatencyTable,
    supernet: DecoderSuperNetwork,
    subnets: list[SubnetConfig],
    runs: int | None = None,
    clock: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Slice, export and run a greedy generation (the table's prompt length and new tokens) of every held-out
    sub-network; per phase, predicted vs measured median with `error_summary` and a warning when it fails."""
    if supernet.geometry != table.geometry:
        raise EftnasError("geometry: the super-network is not the model the decoder LUT was measured for")
    for subnet in subnets:
        check_exportable(table.geometry, subnet)
    spec = RuntimeSpec(table.runtime, table.threads, table.metadata.get("precision_requested", table.precision))
    runs = runs or table.metadata.get("timing", {}).get("generation_runs", 3)
    clock = clock or table.metadata.get("timing", {}).get("clock", "wall")
    samples: dict[str, list[dict[str, Any]]] = {phase: [] for phase in PHASES}
    for subnet in tqdm(subnets, desc="validate decoder LUT", disable=not progress):
        measured = measure_generation(supernet, subnet, spec, table.prompt_len, table.new_tokens, runs, clock)
        for phase in PHASES:
            samples[phase].append(
                {
                    "subnet": subnet.to_dict(),
                    "predicted_us": table.predict_us(subnet, phase),
                    "measured_us": measured[phase].median_us,
                    "measured_iqr_us": measured[phase].iqr_us,
                }
            )
    report: dict[str, Any] = {
        "runtime": table.runtime,
        "precision": table.precision,
        "prompt_len": table.prompt_len,
        "new_tokens": table.new_tokens,
        "context_len": table.context_len,
        "clock": clock,
        "runs": runs,
    }
    for phase, rows in samples.items():
        summary = error_summary([r["predicted_us"] for r in rows], [r["measured_us"] for r in rows])
        report[phase] = {**summary, "warning": validation_warning(summary), "samples": rows}
    return report


def plot_decoder_validation(report: dict[str, Any], path: str | Path, title: str = "decoder LUT") -> Path:
    """Predicted vs measured scatter, one panel per phase, with the ±5% and ±10% bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PHASES), figsize=(11, 5.5))
    for ax, phase in zip(axes, PHASES):
        rows = report[phase]["samples"]
        measured = np.array([r["measured_us"] for r in rows]) / 1e3
        predicted = np.array([r["predicted_us"] for r in rows]) / 1e3
        high = max(measured.max(), predicted.max()) * 1.05
        line = np.array([0.0, high])
        ax.plot(line, line, "k-", lw=1, label="exact")
        for pct, style in ((5, "--"), (10, ":")):
            ax.plot(line, line * (1 + pct / 100), "k" + style, lw=0.8, label=f"±{pct}%")
            ax.plot(line, line * (1 - pct / 100), "k" + style, lw=0.8)
        label = f"{report['runtime']} ({report['precision']}): {report[phase]['within_5pct']:.0%} within ±5%"
        ax.scatter(measured, predicted, s=18, label=label)
        ax.set(
            xlabel=f"measured {PHASE_LABELS[phase]} (ms)",
            ylabel=f"predicted {PHASE_LABELS[phase]} (ms)",
            title=f"{title}: {phase}",
            xlim=(0, high),
            ylim=(0, high),
        )
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
