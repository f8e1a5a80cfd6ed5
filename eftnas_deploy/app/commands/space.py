"""`eftnas-deploy importance` and `eftnas-deploy space`: the pipeline's importance and space stages as commands.

Both call the stage functions (`compute_importance`, `build_space`) with the pipeline's config sections, whose
defaults the flags take (`config_flags`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eftnas_deploy.app.commands.config_flags import add_config_flag, config_from_args
from eftnas_deploy.app.pipeline.config import DataConfig, ImportanceConfig, SpaceConfig
from eftnas_deploy.core.io import atomic_output_dir, check_output_dir
from eftnas_deploy.space.kinds import SPACE_KINDS

IMPORTANCE_FILE = "importance.safetensors"


def register(subparsers: argparse._SubParsersAction) -> None:
    from eftnas_deploy.app.pipeline.config import CRITERIA, FFN_BOUNDS
    from eftnas_deploy.importance.head_order import HEAD_ORDERS

    p = subparsers.add_parser("importance", help="fine-tune briefly and score every head and FFN neuron")
    p.add_argument("--model", required=True, help="HF model directory (with its tokenizer) or hub name")
    add_config_flag(p, DataConfig, "task", help="glue task or squad / squad_v2")
    add_config_flag(
        p, DataConfig, "train_file", "--train-file", "--train",
        help="local .tsv/.csv/.json(l) training file (none: the hub dataset)",
    )  # fmt: skip
    add_config_flag(p, DataConfig, "columns", help="column mapping, e.g. 'sentence=text,label=target' or 'label=0'")
    add_config_flag(p, ImportanceConfig, "criterion", choices=CRITERIA)
    add_config_flag(p, ImportanceConfig, "steps", help="training steps")
    p.add_argument("--epochs", type=int, default=None, help="train this many passes instead of --steps")
    add_config_flag(p, ImportanceConfig, "lr")
    add_config_flag(p, ImportanceConfig, "batch_size")
    add_config_flag(p, DataConfig, "max_length")
    add_config_flag(
        p, DataConfig, "max_train_rows", "--max-train-rows", "--limit", help="subsample the training rows (seeded)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory: model/ (fine-tuned) + importance.safetensors")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run_importance)

    s = subparsers.add_parser("space", help="reorder by importance and generate search_space.json at cost targets")
    s.add_argument("--model", required=True, help="model directory the importance file was computed for")
    s.add_argument("--importance", required=True, help="importance.safetensors")
    add_config_flag(s, SpaceConfig, "kind", choices=SPACE_KINDS, help="space generator")
    rng = s.add_mutually_exclusive_group()
    rng.add_argument("--cost-range", nargs=2, type=float, metavar=("MIN", "MAX"), help="absolute MACs")
    rng.add_argument(
        "--fraction-range", nargs=2, type=float, metavar=("MIN", "MAX"),
        default=(SpaceConfig.min_fraction, SpaceConfig.max_fraction),
        help=f"fractions of full MACs (default: {SpaceConfig.min_fraction} {SpaceConfig.max_fraction})",
    )  # fmt: skip
    add_config_flag(s, SpaceConfig, "num_targets")
    add_config_flag(s, SpaceConfig, "seq_len", help="sequence length the MACs are counted at")
    add_config_flag(s, SpaceConfig, "tolerance", help="relative cost tolerance per target")
    add_config_flag(s, SpaceConfig, "skip_fraction", help="below this kept fraction a block may be 0")
    add_config_flag(s, SpaceConfig, "ffn_multiple", help="round FFN widths to a multiple (capped at the model's)")
    elm = s.add_argument_group("ELM options (need calibration data: --task and --train-file or the hub dataset)")
    add_config_flag(elm, SpaceConfig, "ffn_bounds", choices=FFN_BOUNDS, help="how FFN bounds are set")
    add_config_flag(elm, SpaceConfig, "pca_variance", help="variance fraction the PCA components explain")
    add_config_flag(elm, SpaceConfig, "head_order", choices=HEAD_ORDERS, help="order heads before slicing")
    add_config_flag(elm, SpaceConfig, "calibration_batches", help="training batches for PCA / CKA")
    add_config_flag(elm, DataConfig, "task", help="glue task or squad / squad_v2")
    add_config_flag(elm, DataConfig, "train_file", "--train-file", help="local training file (none: the hub)")
    add_config_flag(elm, DataConfig, "columns", help="column mapping, e.g. 'sentence=text,label=target'")
    add_config_flag(elm, DataConfig, "max_length")
    add_config_flag(elm, DataConfig, "max_train_rows", help="subsample the training rows (seeded)")
    add_config_flag(elm, ImportanceConfig, "batch_size", help="calibration batch size")
    elm.add_argument("--teacher", help="model whose FFN activations PCA reads (default: --model)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output directory: model/ (reordered), importance, search_space.json")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=run_space)


def run_importance(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from eftnas_deploy.app.pipeline.stages import compute_importance
    from eftnas_deploy.data import get_task, load_split, prepare_split
    from eftnas_deploy.data.loading import parse_columns, subsample_rows
    from eftnas_deploy.families.models import load_tokenizer_if_present
    from eftnas_deploy.supernet.loading import load_model

    check_output_dir(args.out, args.overwrite)
    cfg = config_from_args(ImportanceConfig, args)
    task = get_task(args.task)
    model = load_model(args.model, task=task.model_task)
    tokenizer = split = None
    if cfg.criterion != "magnitude":
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        data = load_split(task, args.train_file, columns=parse_columns(args.columns))
        data = subsample_rows(data, args.max_train_rows, args.seed)
        split = prepare_split(task, data, tokenizer, args.max_length, train=True)
    scores = compute_importance(cfg, model, tokenizer, split, args.seed, epochs=args.epochs)
    with atomic_output_dir(args.out, overwrite=args.overwrite) as out:
        model.save_pretrained(out / "model")
        tokenizer = tokenizer or load_tokenizer_if_present(args.model)
        if tokenizer is not None:
            tokenizer.save_pretrained(out / "model")
        scores.save(out / IMPORTANCE_FILE)
    print(f"wrote {Path(args.out) / IMPORTANCE_FILE} ({scores.criterion}, fingerprint {scores.fingerprint[:12]})")
    return 0


def run_space(args: argparse.Namespace) -> int:
    from eftnas_deploy.app.pipeline.stages import build_space
    from eftnas_deploy.importance.scores import ImportanceScores
    from eftnas_deploy.supernet.loading import load_model

    check_output_dir(args.out, args.overwrite)
    low, high = args.fraction_range
    ranged = {"min_fraction": "fraction-range", "max_fraction": "fraction-range"}
    cfg = config_from_args(SpaceConfig, args, flags=ranged, min_fraction=low, max_fraction=high)
    scores = ImportanceScores.load(args.importance)
    model = load_model(args.model, task=scores.geometry.task)
    calibration = _calibration(cfg, args) if cfg.needs_calibration else None
    pca_model = (
        load_model(args.teacher, task=scores.geometry.task) if args.teacher and cfg.ffn_bounds == "pca" else None
    )
    with atomic_output_dir(args.out, overwrite=args.overwrite) as out:
        space = build_space(
            cfg, model, scores, out, tokenizer_source=args.model, cost_range=args.cost_range,
            calibration=calibration, pca_model=pca_model,
        )  # fmt: skip
    print(json.dumps({"heads": [list(c) for c in space.heads], "ffn": [list(c) for c in space.ffn]}))
    print(f"wrote {Path(args.out) / 'search_space.json'} ({space.size()} sub-networks)")
    return 0


def _calibration(cfg: SpaceConfig, args: argparse.Namespace) -> list[dict]:
    """`cfg.calibration_batches` seeded training batches of `--task` for the ELM options."""
    from transformers import AutoTokenizer

    from eftnas_deploy.app.pipeline.stages import calibration_batches
    from eftnas_deploy.data import get_task, load_split, prepare_split
    from eftnas_deploy.data.loading import parse_columns, subsample_rows

    task = get_task(args.task)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    data = load_split(task, args.train_file, columns=parse_columns(args.columns))
    data = subsample_rows(data, args.max_train_rows, args.seed)
    split = prepare_split(task, data, tokenizer, args.max_length, train=True)
    return calibration_batches(split, tokenizer, cfg.calibration_batches, args.batch_size, args.seed)
