"""Benchmark: teacher -> importance/space -> super-network (`full`, `full` + external KD) on SST-2.

Reports dev accuracy of the largest, middle and smallest sub-networks of each super-network, against
the same geometries cut from the teacher without super-network training, plus each stage's wall time.
Writes `benchmarks/results/supernet_sst2[_quick].json` and a PNG plot. `--quick` runs in a few minutes.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import shutil
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from transformers import AutoTokenizer

from eftnas_deploy.app.supernet_dir import write_descriptor
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data import get_task, held_out_split, load_split, prepare_split
from eftnas_deploy.data.loading import subsample_rows
from eftnas_deploy.evaluation import evaluate
from eftnas_deploy.importance.scores import movement_importance, reorder_by_importance
from eftnas_deploy.metrics import count_macs
from eftnas_deploy.space.generate import generate_search_space
from eftnas_deploy.supernet.elastic import SuperNetwork
from eftnas_deploy.training import (
    SuperNetTrainer,
    collator_for,
    teacher_from_config,
    train_teacher,
    training_arguments,
    training_batches,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PROFILES = {
    "quick": dict(
        train_rows=1200, dev_rows=400, max_length=32, teacher_epochs=1, supernet_epochs=0.3, importance_steps=20
    ),
    "full": dict(
        train_rows=20000, dev_rows=None, max_length=64, teacher_epochs=2, supernet_epochs=1, importance_steps=150
    ),
}


def importance_and_space(model, train_split, tokenizer, steps: int, criterion: str) -> tuple[SearchSpace, dict]:
    """EFTNAS stages 1-2: first-order importance while fine-tuning briefly, reorder, space at 5 MAC targets."""
    loader = training_batches(train_split, tokenizer, batch_size=32, seed=0)
    scores = movement_importance(model, loader, steps=steps, lr=5e-5, criterion=criterion)
    scores = reorder_by_importance(model, scores)
    full = count_macs(SubnetConfig.full(scores.geometry), scores.geometry, seq_len=128)
    targets = [f * full for f in (0.3, 0.45, 0.6, 0.75, 0.9)]
    space = generate_search_space(scores, targets, ffn_multiple=32, seq_len=128)
    info = {"criterion": criterion, "importance_steps": steps, "mac_targets_fraction": [0.3, 0.45, 0.6, 0.75, 0.9]}
    return space, info


def save_search_ready(supernet, tokenizer, space, run_dir: Path, name: str, seed: int, profile: dict) -> None:
    """Save the trained super-network as a run dir that `eftnas-deploy search` (and search_algorithms.py) reads."""
    out = run_dir / name / "supernet"
    supernet.save_pretrained(out)
    tokenizer.save_pretrained(out)
    space.save(out / "search_space.json")
    shutil.copyfile(run_dir / "held_out.json", out / "held_out.json")
    data = {
        "train_file": str(DATA / "glue" / "SST-2" / "train.tsv"),
        "max_train_rows": profile["train_rows"],
        "max_length": profile["max_length"],
        "held_out_fraction": 0.1,
    }
    write_descriptor(
        out, task="sst2", model_type=supernet.model.config.model_type, head="text-classification", space=space,
        space_kind="eftnas", data=data, training={"benchmark": name}, teacher=None, seed=seed,
    )  # fmt: skip


def corners(space: SearchSpace) -> dict:
    return {"largest": space.largest(), "middle": space.middle(), "smallest": space.smallest()}


def dev_scores(supernet: SuperNetwork, space: SearchSpace, dev) -> dict:
    return {
        name: round(evaluate(supernet, s, dev, batch_size=128)["accuracy"], 4) for name, s in corners(space).items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--run-dir", default=str(ROOT / "runs" / "bench_supernet_sst2"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--criterion", default="movement", choices=("movement", "taylor"))
    args = parser.parse_args()
    profile = PROFILES["quick" if args.quick else "full"]
    run_dir = Path(args.run_dir + ("_quick" if args.quick else ""))
    shutil.rmtree(run_dir, ignore_errors=True)  # the benchmark's own scratch dir: start fresh
    run_dir.mkdir(parents=True)
    torch.manual_seed(args.seed)
    stages: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name] = round(now - clock, 1)
        clock = now
        print(f"[{name}] {stages[name]} s", flush=True)

    task = get_task("sst2")
    tokenizer = AutoTokenizer.from_pretrained(str(DATA / "tokenizers" / "bert-base-uncased"))
    train_all = load_split(task, DATA / "glue" / "SST-2" / "train.tsv")
    train_sub = subsample_rows(train_all, profile["train_rows"], args.seed)
    rest, held = held_out_split(train_sub, run_dir, fraction=0.1, seed=args.seed)
    dev = load_split(task, DATA / "glue" / "SST-2" / "dev.tsv")
    if profile["dev_rows"]:
        dev = subsample_rows(dev, profile["dev_rows"], args.seed)
    length = profile["max_length"]
    train_split = prepare_split(task, rest, tokenizer, length, train=True)
    held_split = prepare_split(task, held, tokenizer, length)
    dev_split = prepare_split(task, dev, tokenizer, length)
    lap("data")

    teacher = teacher_from_config(
        task, tokenizer, "bert", num_hidden_layers=4, hidden_size=256, num_attention_heads=4,
        intermediate_size=1024, max_position_embeddings=128,
    )  # fmt: skip
    common = dict(per_device_train_batch_size=32, logging_steps=50, seed=args.seed, disable_tqdm=False)
    train_teacher(
        teacher, train_split, tokenizer, run_dir / "teacher", num_train_epochs=profile["teacher_epochs"],
        learning_rate=3e-4, warmup_ratio=0.1, **common,
    )  # fmt: skip
    lap("teacher")
    teacher_dev = round(evaluate(SuperNetwork(copy.deepcopy(teacher)), _full(teacher), dev_split)["accuracy"], 4)

    base = copy.deepcopy(teacher)
    space, space_info = importance_and_space(base, train_split, tokenizer, profile["importance_steps"], args.criterion)
    space.save(run_dir / "search_space.json")
    lap("importance_and_space")

    results = {"teacher_cut": dev_scores(SuperNetwork(copy.deepcopy(base)), space, dev_split)}
    lap("eval_teacher_cut")
    for name, external in (("full", None), ("full_external_kd", teacher)):
        supernet = SuperNetwork(copy.deepcopy(base))
        trainer = SuperNetTrainer(
            supernet=supernet,
            search_space=space,
            strategy="full",
            num_random=1,
            teacher=external,
            args=training_arguments(
                run_dir / name, num_train_epochs=profile["supernet_epochs"], learning_rate=1e-4, **common
            ),
            train_dataset=train_split.features,
            data_collator=collator_for(train_split, tokenizer),
        )
        trainer.train()
        lap(f"supernet_{name}")
        save_search_ready(supernet, tokenizer, space, run_dir, name, args.seed, profile)
        results[name] = dev_scores(supernet, space, dev_split)
        results[f"{name}_held_out"] = dev_scores(supernet, space, held_split)
        lap(f"eval_{name}")

    report = {
        "benchmark": "supernet_sst2",
        "mode": "quick" if args.quick else "full",
        "subsampled": {
            "train_rows": profile["train_rows"],
            "train_rows_available": len(train_all),
            "held_out_rows": len(held),
            "dev_rows": len(dev),
            "max_length": length,
            "note": "SST-2 train subsampled (seeded) to fit the 2-core time budget; dev is the shared 10% split",
        },
        "teacher": {"layers": 4, "hidden": 256, "heads": 4, "ffn": 1024, "trained_from_scratch": True},
        "teacher_dev_accuracy": teacher_dev,
        "search_space": {**space_info, "heads": [list(c) for c in space.heads], "ffn": [list(c) for c in space.ffn]},
        "subnets": {k: v.to_dict() for k, v in corners(space).items()},
        "dev_accuracy": {k: v for k, v in results.items() if not k.endswith("held_out")},
        "held_out_accuracy": {k: v for k, v in results.items() if k.endswith("held_out")},
        "stage_wall_s": stages,
        "total_wall_s": round(sum(stages.values()), 1),
        "machine": {"cpu_threads": torch.get_num_threads(), "platform": platform.platform()},
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stem = "supernet_sst2" + ("_quick" if args.quick else "")
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(report["dev_accuracy"], out / f"{stem}.png")
    print(json.dumps(report, indent=2))


def _full(model):
    from eftnas_deploy.core.geometry import ModelGeometry
    from eftnas_deploy.core.subnet import SubnetConfig

    return SubnetConfig.full(ModelGeometry.from_config(model.config, "text-classification"))


def _plot(dev: dict, path: Path) -> None:
    names = ["largest", "middle", "smallest"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / len(dev)
    for i, (method, scores) in enumerate(dev.items()):
        ax.bar([j + i * width for j in range(3)], [scores[n] for n in names], width, label=method)
    ax.set_xticks([j + width * (len(dev) - 1) / 2 for j in range(3)], names)
    ax.set_ylabel("SST-2 dev accuracy")
    ax.set_ylim(0.4, 1.0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
