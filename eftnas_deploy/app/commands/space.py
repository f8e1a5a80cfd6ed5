"""`eftnas-deploy importance` and `eftnas-deploy space`: EFTNAS stages 1 and 2 from the command line."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer

from eftnas_deploy.core.io import atomic_output_dir, check_output_dir
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data import get_task, load_split, prepare_split
from eftnas_deploy.data.loading import parse_columns
from eftnas_deploy.families.models import load_tokenizer_if_present
from eftnas_deploy.importance.scores import (
    ImportanceScores,
    magnitude_importance,
    movement_importance,
    reorder_by_importance,
)
from eftnas_deploy.metrics import count_macs
from eftnas_deploy.space.generate import evenly_spaced_targets, generate_search_space, macs_cost
from eftnas_deploy.supernet.loading import load_model
from eftnas_deploy.training import training_batches

IMPORTANCE_FILE = "importance.safetensors"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("importance", help="fine-tune briefly and score every head and FFN neuron")
    p.add_argument("--model", required=True, help="HF model directory (with its tokenizer) or hub name")
    p.add_argument("--task", default="sst2", help="glue task or squad / squad_v2 (default: sst2)")
    p.add_argument(
        "--train-file", "--train", dest="train_file", help="local .tsv/.csv/.json(l) training file (or the hub dataset)"
    )
    p.add_argument("--columns", help="column mapping, e.g. 'sentence=text,label=target' or 'label=0,sentence1=3'")
    p.add_argument("--criterion", default="taylor", choices=("taylor", "movement", "magnitude"), help="default: taylor")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: --epochs passes)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument(
        "--max-train-rows", "--limit", dest="max_train_rows", type=int, help="subsample the training rows (seeded)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory: model/ (fine-tuned) + importance.safetensors")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run_importance)

    s = subparsers.add_parser("space", help="reorder by importance and generate search_space.json at cost targets")
    s.add_argument("--model", required=True, help="model directory the importance file was computed for")
    s.add_argument("--importance", required=True, help="importance.safetensors")
    rng = s.add_mutually_exclusive_group(required=True)
    rng.add_argument("--cost-range", nargs=2, type=float, metavar=("MIN", "MAX"), help="absolute MACs")
    rng.add_argument("--fraction-range", nargs=2, type=float, metavar=("MIN", "MAX"), help="fractions of full MACs")
    s.add_argument("--num-targets", type=int, default=5)
    s.add_argument("--seq-len", type=int, default=128, help="sequence length the MACs are counted at")
    s.add_argument("--tolerance", type=float, default=0.02, help="relative cost tolerance per target")
    s.add_argument("--skip-fraction", type=float, default=0.02, help="below this kept fraction a block may be 0")
    s.add_argument("--ffn-multiple", type=int, default=1, help="round FFN widths to a multiple (e.g. 8 or 32)")
    s.add_argument("--out", required=True, help="output directory: model/ (reordered), importance, search_space.json")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=run_space)


def _copy_tokenizer(source: str, target: Path) -> None:
    """Save the tokenizer found beside `source` (if any) with the written model."""
    tokenizer = load_tokenizer_if_present(source)
    if tokenizer is not None:
        tokenizer.save_pretrained(target)


def run_importance(args: argparse.Namespace) -> int:
    check_output_dir(args.out, args.overwrite)
    torch.manual_seed(args.seed)
    task = get_task(args.task)
    model = load_model(args.model, task=task.model_task)
    start = time.perf_counter()
    if args.criterion == "magnitude":
        scores = magnitude_importance(model)
    else:
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        data = load_split(task, args.train_file, columns=parse_columns(args.columns))
        if args.max_train_rows and args.max_train_rows < len(data):
            data = data.shuffle(seed=args.seed).select(range(args.max_train_rows))
        split = prepare_split(task, data, tokenizer, args.max_length, train=True)
        batches = training_batches(split, tokenizer, args.batch_size, args.seed)
        scores = movement_importance(
            model, batches, steps=args.steps, epochs=args.epochs, lr=args.lr, criterion=args.criterion
        )
    scores.metadata["wall_s"] = round(time.perf_counter() - start, 2)
    with atomic_output_dir(args.out, overwrite=args.overwrite) as out:
        model.save_pretrained(out / "model")
        _copy_tokenizer(args.model, out / "model")
        scores.save(out / IMPORTANCE_FILE)
    print(f"wrote {Path(args.out) / IMPORTANCE_FILE} ({scores.criterion}, fingerprint {scores.fingerprint[:12]})")
    return 0


def run_space(args: argparse.Namespace) -> int:
    check_output_dir(args.out, args.overwrite)
    scores = ImportanceScores.load(args.importance)
    model = load_model(args.model, task=scores.geometry.task)
    scores.check_model(model)
    start = time.perf_counter()
    reordered = reorder_by_importance(model, scores)
    geometry = reordered.geometry
    if args.cost_range:
        low, high = args.cost_range
    else:
        full = count_macs(SubnetConfig.full(geometry), geometry, seq_len=args.seq_len)
        low, high = (fraction * full for fraction in args.fraction_range)
    space = generate_search_space(
        reordered,
        evenly_spaced_targets(low, high, args.num_targets),
        cost_fn=macs_cost(geometry, args.seq_len),
        tolerance=args.tolerance,
        skip_fraction=args.skip_fraction,
        ffn_multiple=args.ffn_multiple,
    )
    space.metadata["total_s"] = round(time.perf_counter() - start, 3)
    with atomic_output_dir(args.out, overwrite=args.overwrite) as out:
        model.save_pretrained(out / "model")
        _copy_tokenizer(args.model, out / "model")
        reordered.save(out / IMPORTANCE_FILE)
        space.save(out / "search_space.json")
    print(json.dumps({"heads": [list(c) for c in space.heads], "ffn": [list(c) for c in space.ffn]}))
    print(f"wrote {Path(args.out) / 'search_space.json'} ({space.size()} sub-networks)")
    return 0
