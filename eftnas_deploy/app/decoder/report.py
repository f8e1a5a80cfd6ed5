"""report.json and report.md of a decoder run: perplexity against ms/token, what was exported, how it ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eftnas_deploy.app.decoder.config import DecoderRunConfig
from eftnas_deploy.core.io import read_json, write_json
from latency_lut.decoder_table import PHASES


def write_decoder_report(run_dir: Path, config: DecoderRunConfig, state: dict[str, Any]) -> dict[str, Any]:
    """Collect the stages' records into report.json and a readable report.md; returns the report."""
    search = read_json(run_dir / "04_search" / "decoder_search.json", "search summary")
    export = read_json(run_dir / "05_export" / "export.json", "export record")
    lut = read_json(run_dir / "03_lut" / "decoder_lut.json", "decoder LUT")
    supernet = read_json(run_dir / "02_supernet" / "supernet.json", "super-network record")
    validation_file = run_dir / "03_lut" / "validation.json"
    validation = read_json(validation_file, "LUT validation") if validation_file.is_file() else None
    report = {
        "objective": search["objective"],
        "budget": search["budget"],
        "trials": search["trials"],
        "feasible_evaluated": search.get("feasible_evaluated"),
        "warning": search.get("warning"),
        "full": search["full"],
        "chosen": search["chosen"],
        "front": search["front"],
        "supernet_dev_perplexity": supernet["dev_perplexity"],
        "lut": {k: lut["target"][k] for k in ("runtime", "precision", "threads", "prompt_len", "new_tokens")},
        "lut_validation": None if validation is None else {
            phase: {k: validation[phase][k] for k in ("n", "median_abs_pct", "max_abs_pct") if k in validation[phase]}
            for phase in PHASES
        },
        "exported": export["formats"],
        "stage_wall_s": {name: info.get("wall_s") for name, info in state["stages"].items()},
    }  # fmt: skip
    write_json(run_dir / "report.json", report)
    (run_dir / "report.md").write_text(_markdown(report, config))
    return report


def _markdown(report: dict[str, Any], config: DecoderRunConfig) -> str:
    full, chosen, lut = report["full"], report["chosen"], report["lut"]
    lines = [
        "# Decoder run report",
        "",
        f"Objective: held-out perplexity against LUT-predicted `{report['objective']}` "
        f"({lut['runtime']}, {lut['precision']}, prompt {lut['prompt_len']}, {lut['new_tokens']} new tokens); "
        f"budget {report['budget'] or 'none'}; {report['trials']} trials.",
    ]
    if report.get("warning"):
        lines += ["", f"**Warning:** {report['warning']}"]
    lines += [
        "",
        "| model | perplexity | predicted ms/token | predicted TTFT ms | KV groups | MLP widths |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in (("full", full), ("chosen", chosen)):
        subnet = row["subnet"]
        lines.append(
            f"| {name} | {row['perplexity']:.3f} | {row.get('ms_per_token', float('nan')):.3f} | "
            f"{row.get('ttft_ms', float('nan')):.3f} | {subnet['heads']} | {subnet['ffn']} |"
        )
    lines += ["", "![perplexity vs latency](04_search/perplexity_vs_latency.png)", ""]
    lines += ["## Exported (OpenVINO, stateful)"]
    lines += ["", "| weights | greedy tokens = PyTorch | size MB | measured TTFT ms | measured ms/token |",
              "|---|---|---|---|---|"]  # fmt: skip
    for weights, row in report["exported"].items():
        lines.append(f"| {weights} | {row['greedy_tokens_match_pytorch']} | {row['size_mb']} | "
                     f"{row['ttft_ms']:.3f} | {row['ms_per_token']:.3f} |")  # fmt: skip
    lines += ["", "Measured on this machine (f32 inference precision, the LUT's threads and clock); "
              "fp32 greedy tokens must equal PyTorch's or the export fails."]  # fmt: skip
    if report["lut_validation"]:
        lines += ["", "## LUT validation (held-out sub-networks, end-to-end generation)", ""]
        for phase, row in report["lut_validation"].items():
            lines.append(f"- {phase}: n={row['n']}, median |error| {row['median_abs_pct']:.1f}%")
        lines += ["", "![LUT validation](03_lut/validation.png)"]
    lines += ["", f"Super-network dev perplexity: {report['supernet_dev_perplexity']}",
              f"Stage wall times (s): {report['stage_wall_s']}", ""]  # fmt: skip
    return "\n".join(lines)
