"""`eftnas-deploy demo`: the whole pipeline offline on an embedded task, ending in a bundle and a report.

Everything is built here: the synthetic text-classification task (`eftnas_deploy.data.synthetic`) written as
SST-2-style TSV files, a WordPiece tokenizer trained on it, and a small BERT built from a config.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import time
from pathlib import Path
from typing import Any

from eftnas_deploy.core.errors import OutputDirError
from eftnas_deploy.core.io import LOCK_FILE, atomic_output_dir
from eftnas_deploy.core.locking import exclusive_dir
from eftnas_deploy.data.synthetic import make_dataset, train_tokenizer

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {  # CI: a couple of minutes on 2 cores
        "rows": (1200, 200),
        "model": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
        "teacher": {"epochs": 8.0, "lr": 1e-3, "warmup_ratio": 0.1},
        "importance": {"steps": 20},
        "space": {"min_fraction": 0.25, "num_targets": 3, "ffn_multiple": 8, "tolerance": 0.15},
        "lut": dict(warmup=2, repeats=5, min_time_s=0.05, stack=2, calibration=2, validate_samples=3),
        "supernet": {"epochs": 1.0, "lr": 5e-4, "save_steps": 10},
        "search": {"evals": 40, "remeasure_top": 2, "max_latency_fraction": 0.5},
        "finetune": {"epochs": 1.0, "lr": 2e-4},
        "export": {"calibration_size": 64, "benchmark_repeats": 10},
    },
    "small": {  # the README's demo: ≤10 minutes on 2 cores
        "rows": (6000, 600),
        "model": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512),
        "teacher": {"epochs": 10.0, "lr": 5e-4, "warmup_ratio": 0.1},  # the frames' flips need ~1900 steps
        "importance": {"steps": 60},
        "space": {"min_fraction": 0.04, "num_targets": 5, "ffn_multiple": 32, "tolerance": 0.1},
        "lut": dict(warmup=3, repeats=10, min_time_s=0.3, stack=4, calibration=10, validate_samples=8),
        "supernet": {"epochs": 3.0, "lr": 5e-4},
        "search": {"evals": 200, "remeasure_top": 5, "max_latency_fraction": 0.6},
        "finetune": {"epochs": 1.0, "lr": 2e-4},
        "export": {"calibration_size": 200, "benchmark_repeats": 50},
    },
}
DATA_DIR = "data"
MAX_LENGTH = 48
POSITIONS = 64  # the demo model's max_position_embeddings; its tokenizer's model_max_length matches


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="offline end-to-end run on an embedded task (bundle + report)")
    p.add_argument("--out", default="runs/demo", help="run directory")
    p.add_argument("--size", default="small", choices=sorted(SIZES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="start afresh in a non-empty --out")
    p.set_defaults(func=run)


def write_task(data_dir: Path, train_rows: int, dev_rows: int, seed: int) -> None:
    """The synthetic task as SST-2 TSV files plus a WordPiece tokenizer trained on its training text.

    Written to a temporary directory that becomes `data_dir` only when complete: a kill leaves no half-written
    data behind (the next run removes the temporary and writes the data again).
    """
    with atomic_output_dir(data_dir, overwrite=True) as tmp:
        _write_task(tmp, train_rows, dev_rows, seed)


def _write_task(data_dir: Path, train_rows: int, dev_rows: int, seed: int) -> None:
    splits = {"train": make_dataset(train_rows, seed), "dev": make_dataset(dev_rows, seed + 1)}
    for name, examples in splits.items():
        tmp = data_dir / f".{name}.tsv.tmp"
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(["sentence", "label"])
            writer.writerows((e.text, e.label) for e in examples)
        tmp.replace(data_dir / f"{name}.tsv")
    tokenizer = train_tokenizer([e.text for e in splits["train"]], vocab_size=256, model_max_length=POSITIONS)
    tokenizer.save_pretrained(data_dir / "tokenizer")


def demo_config(run_dir: Path, size: str, seed: int) -> dict[str, Any]:
    """The pipeline config of the demo (a dict, as it would be written in pipeline.yaml)."""
    s = SIZES[size]
    data = run_dir / DATA_DIR
    return {
        "data": {
            "task": "sst2",
            "train_file": str(data / "train.tsv"),
            "dev_file": str(data / "dev.tsv"),
            "max_length": MAX_LENGTH,
            "held_out_fraction": 0.1,
        },
        "model": {
            "tokenizer": str(data / "tokenizer"),
            "from_config": {**s["model"], "max_position_embeddings": POSITIONS},
        },
        "teacher": s["teacher"],
        # Trained from scratch, the model sits at a minimum where the movement sum can rank important units
        # last; the squared first-order (Taylor) term does not cancel there, so the demo uses it.
        "importance": {"criterion": "taylor", "lr": 1e-4, **s["importance"]},
        "space": {"max_fraction": 0.9, "seq_len": 32, **s["space"]},
        "lut": {"runtime": "onnxruntime", "threads": 1, "seq_len": 32, "batch": 1, **s["lut"]},
        "supernet": {"strategy": "full", **s["supernet"]},
        "search": {"objective": "latency", **s["search"]},
        "finetune": s["finetune"],
        "export": {"formats": ["pytorch", "onnx", "openvino", "int8"], **s["export"]},
        "seed": seed,
        "out": str(run_dir),
    }


def _demo_entry(name: str) -> bool:
    """What a demo run dir holds before its pipeline starts: the data (or its temporaries) and the lock."""
    return name in (DATA_DIR, LOCK_FILE) or name.startswith((f".{DATA_DIR}.tmp-", f".{DATA_DIR}.old-"))


def run(args: argparse.Namespace) -> int:
    from eftnas_deploy.app.pipeline.config import PipelineConfig
    from eftnas_deploy.app.pipeline.runner import CONFIG_FILE, run_pipeline

    start = time.perf_counter()
    run_dir = Path(args.out).resolve()
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputDirError(f"out: {run_dir} exists and is not a directory")
    if not args.overwrite and not (run_dir / CONFIG_FILE).is_file():
        # A demo run dir resumes, and so does one a kill left with (part of) the generated data only;
        # anything else needs --overwrite.
        foreign = sorted(p.name for p in run_dir.iterdir() if not _demo_entry(p.name)) if run_dir.is_dir() else []
        if foreign:
            raise OutputDirError(
                f"out: {run_dir} is not empty and holds no demo run ({', '.join(foreign[:3])}); "
                "pass --overwrite to replace it"
            )
    with exclusive_dir(run_dir, what="out"):
        if args.overwrite:
            for entry in run_dir.iterdir():
                if entry.name != LOCK_FILE:
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        data = run_dir / DATA_DIR
        if not (data / "tokenizer" / "tokenizer.json").is_file():
            write_task(data, *SIZES[args.size]["rows"], seed=args.seed)
        config = PipelineConfig.from_dict(demo_config(run_dir, args.size, args.seed))
        run_pipeline(config, run_dir, keep=(DATA_DIR,))
    print(f"demo finished in {time.perf_counter() - start:.0f} s: {run_dir / 'report.md'}")
    return 0
