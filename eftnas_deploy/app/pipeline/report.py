"""The run report: report.md, report.json and PNGs (Pareto front with measured ms, LUT predicted vs measured)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from eftnas_deploy.app.pipeline.context import EXPORT, FINETUNE, LUT, SEARCH, SPACE, SUPERNET, TEACHER, RunContext
from eftnas_deploy.app.pipeline.deployment import speedups
from eftnas_deploy.core.io import read_json, write_json
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.metrics import count_macs, count_params
from eftnas_deploy.search.outputs import deployed
from eftnas_deploy.search.proxies import METRIC_LABELS

PUBLISHED = ("report.md", "report.json", "pareto.png", "lut_validation.png")


def write_report(ctx: RunContext, work: Path) -> dict[str, Any]:
    """Write the report into `work` (the runner publishes it at the run dir's top level)."""
    from eftnas_deploy.core.geometry import ModelGeometry

    search_dir, export_dir = ctx.stage_dir(SEARCH), ctx.stage_dir(EXPORT)
    pareto = read_json(search_dir / "pareto.json", "pareto")
    summary = read_json(search_dir / "search_summary.json", "search summary")
    deployment = read_json(export_dir / "deployment.json", "deployment")
    geometry = ModelGeometry.from_dict(pareto["geometry"])
    searched = SubnetConfig.from_dict(deployment["subnet"])
    chosen = deployed(searched)  # LoRA ranks are merged away: the deployed model's cost is its widths'
    full = SubnetConfig.full(geometry)
    seq_len, batch = deployment["seq_len"], deployment["batch"]
    lut_runtime = (deployment.get("lut") or {}).get("runtime")
    measured_lut = [
        r
        for r in deployment["timings"]
        if r["runtime"] == lut_runtime and r["variant"] == "fp32" and r["precision_requested"] != "default"
    ]
    figures = {
        "subnet": searched.to_dict(),
        "macs": count_macs(chosen, geometry, seq_len=seq_len, batch=batch),
        "macs_full": count_macs(full, geometry, seq_len=seq_len, batch=batch),
        "params": count_params(chosen, geometry),
        "params_full": count_params(full, geometry),
        "predicted_ms": deployment["predicted_ms"],
        "predicted_ms_by_length": deployment.get("predicted_ms_by_length"),
        "budget": summary["budget"],
        "search": {
            "trials": summary["trials"],
            "feasible_evaluated": summary.get("feasible_evaluated"),
            "repaired_proposals": summary.get("repaired_proposals"),
            "warning": summary.get("warning"),
            "metric": summary.get("metric", "score"),
            # the front's accuracy axis (the search metric) at the chosen and full sub-networks
            "axis": {"chosen": summary["chosen"]["accuracy"], "full": summary["full_network"]["accuracy"]},
        },
        "finetune": read_state_outputs(ctx, FINETUNE),
        "space_methods": space_methods(ctx),
        "held_out_accuracy": held_out_scores(summary),
        "accuracy": deployment["accuracy"],
        "timings": deployment["timings"],
        "speedups": speedups(deployment["timings"]),
        "parity": deployment["parity"],
        "threads": deployment["threads"],
        "seq_len": seq_len,
        "batch": batch,
    }
    if deployment.get("adapters"):
        figures["adapters"] = deployment["adapters"]
    if summary["objective"] == "latency" and deployment["predicted_ms"]:
        plot_front(work / "pareto.png", pareto, figures, measured_lut)
    else:
        shutil.copy2(search_dir / "pareto.png", work / "pareto.png")
    validation = ctx.stage_dir(LUT) / "lut_validation.png"
    if validation.is_file():
        shutil.copy2(validation, work / "lut_validation.png")
        figures["lut_validation"] = read_json(ctx.stage_dir(LUT) / "validation.json", "LUT validation")
        figures["lut_validation"].pop("samples", None)
    write_json(work / "report.json", figures)
    (work / "report.md").write_text(render(ctx, figures, geometry, validation.is_file()))
    return {"files": sorted(p.name for p in work.iterdir())}


def space_methods(ctx: RunContext) -> dict[str, Any]:
    """Which method set the heads' and FFN bounds, the head order and the super-network's RKD weight."""
    path = ctx.stage_dir(SPACE) / "search_space.json"
    elm = (read_json(path, "search space").get("metadata") or {}).get("elm", {}) if path.is_file() else {}
    methods = {k: elm[k] for k in ("bounds", "head_order", "pca_variance", "pca_components") if k in elm}
    return {**methods, "rkd_weight": ctx.config.supernet.rkd_weight}


def read_state_outputs(ctx: RunContext, stage: str) -> dict[str, Any] | None:
    """What a finished stage recorded in pipeline_state.json (None if it did not run)."""
    state = read_json(ctx.run_dir / "pipeline_state.json", "pipeline state")
    return (state["stages"].get(stage) or {}).get("outputs")


def publish(report_dir: Path, run_dir: Path) -> None:
    """Copy the report files to the run dir's top level."""
    for name in PUBLISHED:
        if (report_dir / name).is_file():
            shutil.copy2(report_dir / name, run_dir / name)


def held_out_scores(summary: dict[str, Any]) -> dict[str, float | None]:
    """The task score of the chosen, full and smallest sub-networks on the held-out rows, as the search found them."""
    if "held_out_scores" in summary:
        return summary["held_out_scores"]
    return {  # searches before `search.metric` recorded the score as the front's accuracy axis
        "chosen": summary["chosen"]["accuracy"],
        "full": summary["full_network"]["accuracy"],
        "smallest": (summary.get("smallest_network") or {}).get("accuracy"),
    }


def plot_front(path: Path, pareto: dict, figures: dict, measured_lut: list[dict]) -> None:
    """Accuracy vs latency: predicted front, re-measured finalists, full model, budget line, chosen point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted(pareto["points"], key=lambda p: p["predicted_latency_ms"])
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.step([p["predicted_latency_ms"] for p in points], [p["accuracy"] for p in points], where="post", lw=1)
    ax.scatter([p["predicted_latency_ms"] for p in points], [p["accuracy"] for p in points], s=18,
               label="Pareto front (LUT-predicted ms)")  # fmt: skip
    remeasured = [p for p in points if "measured_latency_ms" in p]
    if remeasured:
        ax.scatter([p["measured_latency_ms"] for p in remeasured], [p["accuracy"] for p in remeasured], s=30,
                   facecolors="none", edgecolors="tab:orange", label="re-measured end to end")  # fmt: skip
    axis = figures["search"]["axis"]
    full_acc = axis["full"]
    ax.scatter([figures["predicted_ms"]["full"]], [full_acc], marker="*", s=120, c="tab:red", label="full model")
    full_measured = [r for r in measured_lut if r["model"] == "full"]
    if full_measured:
        ax.scatter([full_measured[0]["median_ms"]], [full_acc], marker="*", s=120, facecolors="none",
                   edgecolors="tab:red", label="full model, measured")  # fmt: skip
    chosen_acc = axis["chosen"]
    ax.scatter([figures["predicted_ms"]["chosen"]], [chosen_acc], marker="D", s=50, c="tab:green", label="chosen")
    budget = figures["budget"].get("latency")
    if budget is not None:
        ax.axvline(budget, ls="--", c="tab:green", label=f"budget {budget:.3g} ms")
    metric = figures["accuracy"].get("metric", "score")
    if figures["search"]["metric"] != "score":
        metric = METRIC_LABELS[figures["search"]["metric"]]
    ax.set(xlabel="latency (ms)", ylabel=f"held-out {metric}", title=f"{metric.capitalize()} vs latency")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _budget_text(budget: dict[str, float]) -> str:
    units = {"latency": "ms predicted", "macs": "M MACs", "params": "M parameters"}
    return ", ".join(f"{name} ≤ {value:.4g} {units.get(name, '')}".strip() for name, value in budget.items()) or "none"


def adapter_lines(a: dict, layers: int) -> list[str]:
    """The report's LoRA section: the chosen sub-adapter's ranks and parameters, the sparsity reached."""
    params, full = a["trainable_parameters"], a["super_adapter_parameters"]
    names = {"lora_qkv": "Q/K/V rank", "lora_up": "FFN-up rank", "lora_down": "FFN-down rank"}
    lines = [
        "## LoRA super-adapter",
        "",
        "The chosen sub-adapter is merged into the frozen base (sparsity kept), then sliced to the chosen widths; "
        f"the stock peft sub-adapter is in `{EXPORT}/{a['sub_adapter_dir']}/` (base: `{a['base']}`).",
        "",
        "| layer | " + " | ".join(str(i) for i in range(layers)) + " |",
        "|---|" + "---|" * layers,
    ]
    lines += [f"| {names.get(d, d)} | " + " | ".join(str(r) for r in ranks) + " |" for d, ranks in a["ranks"].items()]
    lines += [
        "",
        f"Trainable parameters of the sub-adapter: {params['lora']:,} LoRA + {params['head']:,} task head "
        f"(super-adapter: {full['lora']:,} LoRA).",
    ]
    if a.get("unmerged_vs_exported_max_abs") is not None:
        diff = a["unmerged_vs_exported_max_abs"]
        lines.append(f"Unmerged sub-adapter vs exported PyTorch model: max |Δlogit| {diff:.2e}.")
    sparsity = a.get("sparsity")
    if sparsity:
        kept = "every pruned weight is still zero" if sparsity["mask_kept"] else "**pruned weights were refilled**"
        lines += [
            "",
            f"Sparsity of the merged model's pruned layers: {sparsity['overall']:.1%} overall; {kept}.",
            "",
            "| layer | zeros |",
            "|---|---|",
        ]
        lines += [f"| {name} | {value:.1%} |" for name, value in sparsity["per_layer"].items()]
    return [*lines, ""]


def render(ctx: RunContext, f: dict, geometry: Any, has_validation: bool) -> str:
    cfg = ctx.config
    q = f["accuracy"].get("quantization") or {}
    split = f["accuracy"]["metric_split"]
    lines = [
        "# EFTNAS deployment report",
        "",
        f"Task **{cfg.data.task}**, model **{cfg.model.name or 'built from config'}** "
        f"({geometry.num_layers} layers, {geometry.num_heads} heads, FFN {geometry.intermediate_size}); "
        f"budget {_budget_text(f['budget'])}; latency at batch {f['batch']}, sequence length {f['seq_len']}, "
        f"{f['threads']} thread(s).",
        "",
        "## Chosen sub-network",
        "",
        "| layer | " + " | ".join(str(i) for i in range(geometry.num_layers)) + " |",
        "|---|" + "---|" * geometry.num_layers,
        "| heads | " + " | ".join(str(h) for h in f["subnet"]["heads"]) + " |",
        "| FFN | " + " | ".join(str(w) for w in f["subnet"]["ffn"]) + " |",
        "",
        "| | chosen | full model |",
        "|---|---|---|",
        f"| MACs | {f['macs'] / 1e6:.2f} M ({f['macs'] / f['macs_full']:.0%}) | {f['macs_full'] / 1e6:.2f} M |",
        f"| parameters | {f['params'] / 1e6:.3f} M | {f['params_full'] / 1e6:.3f} M |",
    ]
    if f["predicted_ms"]:
        lines.append(f"| predicted ms (LUT) | {f['predicted_ms']['chosen']:.3f} | {f['predicted_ms']['full']:.3f} |")
    full_by = {(r["runtime"], r["precision_requested"]): r for r in f["timings"] if r["model"] == "full"}
    for row in (r for r in f["timings"] if r["model"] == "chosen"):
        other = full_by.get((row["runtime"], row["precision_requested"])) if row["variant"] == "fp32" else None
        kind = "INT8 IR" if row["variant"] == "int8" else "FP32 model"
        label = f"measured ms, {row['runtime']} {kind}, {row['precision_requested']} → ran {row['precision']}"
        full_text = f"{other['median_ms']:.3f}" if other else "–"
        lines.append(f"| {label} | {row['median_ms']:.3f} | {full_text} |")
    for s in f["speedups"]:
        lines.append(f"| speedup, {s['runtime']} ({s['precision']}) | **{s['speedup']:.2f}×** | 1.00× |")
    acc, metric = f["accuracy"], f["accuracy"].get("metric", "score")
    lines += [
        f"| held-out {metric} (PyTorch, super-network weights, search) | {f['held_out_accuracy']['chosen']:.4f} | "
        f"{f['held_out_accuracy']['full']:.4f} |",
    ]
    methods = f.get("space_methods") or {}
    if methods.get("bounds"):
        b = methods["bounds"]
        pca = (
            f" ({methods['pca_variance']:.0%} variance: {methods['pca_components']} components)"
            if "pca_components" in methods
            else ""
        )
        lines.append(
            f"\nSearch-space bounds: heads by {b['heads']}, FFN by {b['ffn']}{pca}; head order: "
            f"{methods.get('head_order', 'importance')}; super-network RKD weight {methods['rkd_weight']}."
        )
    lines += [
        "",
        f"## Accuracy against the teacher ({split} split, {acc.get('rows', '?')} rows, {metric}; same rows for "
        "every line)",
        "",
        "| model | score | vs teacher |",
        "|---|---|---|",
    ]
    teacher_score = acc.get("teacher")
    rows = [
        ("fine-tuned teacher (100% MACs)", teacher_score),
        ("super-network, full sub-network", acc.get("supernet_full")),
        (f"chosen, PyTorch FP32 ({acc.get('weights', 'super-network')})", acc["pytorch_chosen"]),
    ]
    if q.get("eval_examples"):
        rows += [("chosen, OpenVINO FP32", q["accuracy_fp32"]), ("chosen, OpenVINO INT8", q["accuracy_int8"])]
    for label, score in rows:
        drop = f"{100 * (score - teacher_score):+.2f} pt" if score is not None and teacher_score is not None else "–"
        lines.append(f"| {label} | {_fmt(score)} | {drop} |")
    ft = f.get("finetune") or {}
    if ft.get("enabled"):
        kept = "kept" if ft["kept"] else "not kept (held-out score dropped; the super-network's weights ship)"
        for name, sc in ft["scores"].items():
            lines.append(
                f"\nFinal fine-tune ({name}): {_fmt(sc['before'])} before → {_fmt(sc.get('after'))} after, {kept}."
            )
        if ft.get("distilled_from"):  # absent from runs made before finetune.teacher
            lines.append(_distilled_from(ft["distilled_from"]))
    search = f["search"]
    lines += [
        "",
        f"Search: {search['trials']} trials, {_fmt(search['feasible_evaluated'])} distinct feasible sub-networks "
        f"evaluated ({_fmt(search['repaired_proposals'])} over-budget proposals repaired to fit)"
        + ("." if search["metric"] == "score" else f", ranked by {METRIC_LABELS[search['metric']]} (`search.metric`)."),
    ]
    held = f["held_out_accuracy"]
    if held.get("smallest") is not None:
        lines += [
            "",
            f"Trade-off on the held-out split (super-network weights): full sub-network {_fmt(held['full'])}, "
            f"chosen {_fmt(held['chosen'])}, smallest of the space {_fmt(held['smallest'])}.",
        ]
    if search.get("warning"):
        lines.append(f"\n**Warning:** {search['warning']}")
    lines += [
        "",
        "Measured medians come from one run of the same harness on this machine (precision as run in "
        "parentheses; OpenVINO's `default` may be bf16). Speedups compare the same runtime and precision.",
        "",
        "## Pareto front",
        "",
        "![Pareto front](pareto.png)",
        "",
    ]
    if has_validation:
        v = f["lut_validation"]
        lines += [
            "## LUT: predicted vs measured",
            "",
            f"{v['runtime']} ({v['precision']}), {v['n']} sub-networks: median |error| {v['median_abs_pct']:.1f}%, "
            f"p95 {v['p95_abs_pct']:.1f}%, within ±10%: {v['within_10pct']:.0%}.",
            "",
            *([f"**{v['warning']}.**", ""] if v.get("warning") else []),
            "![LUT validation](lut_validation.png)",
            "",
        ]
    if f.get("predicted_ms_by_length"):
        lines += [
            "## Latency by sequence length (LUT)",
            "",
            "| tokens | chosen ms | full ms | speedup |",
            "|---|---|---|---|",
        ]
        for length, ms in f["predicted_ms_by_length"].items():
            lines.append(f"| {length} | {ms['chosen']:.3f} | {ms['full']:.3f} | {ms['full'] / ms['chosen']:.2f}× |")
        lines.append("")
    if f.get("adapters"):
        lines += adapter_lines(f["adapters"], geometry.num_layers)
    parity = f["parity"]
    lines += ["## Parity", ""]
    if parity.get("supernet_vs_sliced_max_abs") is not None:
        diff = parity["supernet_vs_sliced_max_abs"]
        lines.append(f"- super-network vs sliced PyTorch model: max |Δlogit| {diff:.2e}")
    for name, p in parity.items():
        if isinstance(p, dict):
            lines.append(f"- {name} vs PyTorch: max |Δ| {p['max_abs_diff']:.2e} (tolerance {p['atol']:.0e})")
    state = read_json(ctx.run_dir / "pipeline_state.json", "pipeline state")
    lines += ["", "## Stages", "", "| stage | wall s |", "|---|---|"]
    done = {name: r for name, r in state["stages"].items() if r.get("status") == "done"}
    lines += [f"| {name} | {r['wall_s']} |" for name, r in done.items()]
    lines += [
        "",
        "## Files",
        "",
        f"- deployment bundle: `{EXPORT}/bundle/` (bundle.json lists the formats)",
        f"- Pareto front: `{SEARCH}/pareto.json`; super-network: `{SUPERNET}/`; teacher: `{TEACHER}/`",
        f"- latency LUT: `{LUT}/lut.json`",
        "",
    ]
    return "\n".join(lines)


def _distilled_from(record: dict[str, Any]) -> str:
    """The final fine-tune's KD source, with the held-out scores it was chosen on (finetune.teacher: best)."""
    if record["teacher"] is None:
        return "\nThe final fine-tune did not distil (finetune.distill: false)."
    names = {"teacher": "the fine-tuned teacher", "supernet": "the super-network's largest sub-network"}
    who = names[record["teacher"]]
    scores = record.get("held_out_scores")
    if not scores:
        return f"\nIt distilled from {who}."
    return (
        f"\nIt distilled from {who}, the better on held-out rows (teacher {_fmt(scores['teacher'])}, "
        f"largest sub-network {_fmt(scores['supernet'])})."
    )
