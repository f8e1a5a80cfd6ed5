"""`eftnas-deploy train-teacher` and `train-supernet`: the pipeline's teacher and super-network stages as commands.

Both call the stage functions (`fit_teacher`, `train_supernet`) with the pipeline's config sections, whose
defaults the flags take (`config_flags`). `train-supernet` works in `<out>.partial/` (its checkpoints in
`<out>.partial/checkpoints`, as a pipeline stage does) and renames it to `<out>` when it finishes, so
`--resume` continues an interrupted run and `<out>` never holds half a super-network.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from eftnas_deploy.app.commands.config_flags import add_config_flag, config_default, config_from_args
from eftnas_deploy.app.pipeline.config import DataConfig, ModelConfig, SupernetConfig, TeacherConfig
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.family import family_names
from eftnas_deploy.core.io import atomic_output_dir, check_output_dir, write_json
from eftnas_deploy.training import DISTILL_SOURCES, STRATEGIES, KDConfig
from eftnas_deploy.training.growth import GROWTH

PARTIAL_SUFFIX = ".partial"


def register(subparsers: argparse._SubParsersAction) -> None:
    teacher = subparsers.add_parser("train-teacher", help="fine-tune (or train from scratch) the teacher on a task")
    _data_arguments(teacher)
    add_config_flag(teacher, TeacherConfig, "epochs")
    add_config_flag(teacher, TeacherConfig, "lr")
    add_config_flag(teacher, TeacherConfig, "batch_size")
    add_config_flag(teacher, TeacherConfig, "warmup_ratio")
    teacher.add_argument("--model", help="pretrained model (hub name or directory) to fine-tune")
    teacher.add_argument("--from-scratch", action="store_true", help="build the model from a config instead")
    add_config_flag(teacher, ModelConfig, "model_type", choices=family_names())
    teacher.add_argument("--layers", type=int, default=4)
    teacher.add_argument("--hidden-size", type=int, default=256)
    teacher.add_argument("--heads", type=int, default=4)
    teacher.add_argument("--intermediate-size", type=int, default=1024)
    teacher.set_defaults(func=run_teacher)

    supernet = subparsers.add_parser("train-supernet", help="train a weight-sharing super-network")
    _data_arguments(supernet)
    add_config_flag(supernet, DataConfig, "held_out_fraction", help="train rows kept for search")
    add_config_flag(supernet, SupernetConfig, "epochs")
    add_config_flag(supernet, SupernetConfig, "lr")
    add_config_flag(supernet, SupernetConfig, "batch_size")
    add_config_flag(supernet, SupernetConfig, "warmup_ratio")
    supernet.add_argument("--model", required=True, help="model directory to turn into the super-network")
    supernet.add_argument("--search-space", help="search_space.json (default: every head count, 8 FFN widths)")
    add_config_flag(supernet, SupernetConfig, "strategy", choices=STRATEGIES)
    add_config_flag(supernet, SupernetConfig, "num_random", help="random sub-networks per step (k)")
    supernet.add_argument("--teacher", help="fine-tuned teacher directory for external-teacher KD (recommended)")
    add_config_flag(
        supernet, SupernetConfig, "distill_from", choices=DISTILL_SOURCES,
        help="with --teacher: every sub-network follows it (teacher), or students follow the largest (largest)",
    )  # fmt: skip
    supernet.add_argument("--kd-temperature", type=float, default=config_default(KDConfig, "temperature"))
    supernet.add_argument("--kd-task-weight", type=float, default=config_default(KDConfig, "task_weight"))
    supernet.add_argument("--kd-distill-weight", type=float, default=config_default(KDConfig, "distill_weight"))
    add_config_flag(
        supernet, SupernetConfig, "rkd_weight", help="relational KD on the [CLS] vector, added with this weight"
    )
    add_config_flag(supernet, SupernetConfig, "growth", choices=GROWTH, help="progressive FFN growth (ELM)")
    add_config_flag(supernet, SupernetConfig, "growth_stages", help="growth stages (0: one per epoch)")
    add_config_flag(supernet, SupernetConfig, "save_steps", help="checkpoint every N steps (0: none)")
    supernet.add_argument(
        "--resume", action="store_true", help=f"resume from the last checkpoint in <out>{PARTIAL_SUFFIX}"
    )
    supernet.set_defaults(func=run_supernet)


def _data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="glue task (cola, sst2, mrpc, ...) or squad / squad_v2")
    add_config_flag(p, DataConfig, "train_file", help="local .tsv/.csv/.json(l) file (none: the hub dataset)")
    add_config_flag(p, DataConfig, "columns", help="column mapping, e.g. 'sentence=text,label=target' or 'label=0'")
    p.add_argument("--tokenizer", help="tokenizer directory or name (default: the model's)")
    add_config_flag(p, DataConfig, "max_length")
    add_config_flag(p, DataConfig, "group_by_length", help="batches of similar length")
    p.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (-1: the epochs)")
    p.add_argument("--seed", type=int, default=0)
    add_config_flag(p, DataConfig, "max_train_rows", help="subsample the training rows (seeded)")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")


def _data_config(args: argparse.Namespace) -> DataConfig:
    train_file = str(Path(args.train_file).resolve()) if args.train_file else None
    return config_from_args(DataConfig, args, train_file=train_file, check=False)


def _train_rows(args: argparse.Namespace):
    from eftnas_deploy.data import get_task, load_split
    from eftnas_deploy.data.loading import parse_columns, subsample_rows

    task = get_task(args.task)
    data = load_split(task, args.train_file, columns=parse_columns(args.columns))
    return task, subsample_rows(data, args.max_train_rows, args.seed)


def _tokenizer(args: argparse.Namespace):
    from eftnas_deploy.families.sources import load_tokenizer

    source = args.tokenizer or args.model
    if not source:
        raise EftnasError("tokenizer: pass --tokenizer (a model trained from scratch has none)")
    return load_tokenizer(source, "tokenizer" if args.tokenizer else "model")


def run_teacher(args: argparse.Namespace) -> int:
    from eftnas_deploy.app.pipeline.stages import fit_teacher
    from eftnas_deploy.data import prepare_split
    from eftnas_deploy.training import load_teacher, teacher_from_config

    check_output_dir(args.out, args.overwrite)
    if bool(args.model) == bool(args.from_scratch):
        raise EftnasError("model: pass exactly one of --model or --from-scratch")
    cfg = config_from_args(TeacherConfig, args)
    task, data = _train_rows(args)
    tokenizer = _tokenizer(args)
    if args.from_scratch:
        model = teacher_from_config(
            task, tokenizer, args.model_type, num_hidden_layers=args.layers, hidden_size=args.hidden_size,
            num_attention_heads=args.heads, intermediate_size=args.intermediate_size,
            max_position_embeddings=max(512, args.max_length),
        )  # fmt: skip
    else:
        model = load_teacher(args.model, task)
    train = prepare_split(task, data, tokenizer, args.max_length, train=True)
    start = time.perf_counter()
    with atomic_output_dir(args.out, args.overwrite) as out:
        fit_teacher(cfg, model, tokenizer, train, out, args.seed, 0, args.group_by_length, args.max_steps)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        write_json(out / "train_config.json", {**_jsonable(args), "wall_s": round(time.perf_counter() - start, 1)})
    print(f"wrote {args.out}")
    return 0


def run_supernet(args: argparse.Namespace) -> int:
    from eftnas_deploy.app.pipeline.stages import train_supernet
    from eftnas_deploy.core.space import SearchSpace
    from eftnas_deploy.data import held_out_split, prepare_split
    from eftnas_deploy.data.split import HELD_OUT_FILE

    out = Path(args.out)
    work = out.with_name(out.name + PARTIAL_SUFFIX)
    if not args.resume:
        check_output_dir(out, args.overwrite)
    cfg = config_from_args(SupernetConfig, args, external_teacher_kd=bool(args.teacher))
    data_cfg = _data_config(args)
    kd = KDConfig(args.kd_temperature, args.kd_task_weight, args.kd_distill_weight, rkd_weight=cfg.rkd_weight)
    task, data = _train_rows(args)
    tokenizer = _tokenizer(args)
    if work.exists() and not args.resume:
        shutil.rmtree(work)  # left by an interrupted run; --resume would continue it
    try:
        rest, held = held_out_split(data, work, args.held_out_fraction, args.seed)
        train = prepare_split(task, rest, tokenizer, args.max_length, train=True)
        held_out = prepare_split(task, held, tokenizer, args.max_length)
        space = SearchSpace.load(args.search_space) if args.search_space else None
        result = train_supernet(
            cfg, data_cfg, model_dir=args.model, tokenizer=tokenizer, search_space=space, teacher_dir=args.teacher,
            train=train, held_out=held_out, held_out_file=work / HELD_OUT_FILE, work=work, seed=args.seed,
            space_kind=(space.metadata.get("kind", "file") if space else "full-range"), resume=args.resume,
            max_steps=args.max_steps, kd=kd,
        )  # fmt: skip
    except BaseException:
        if not any(work.glob("checkpoints/checkpoint-*")):  # nothing to resume: leave nothing behind
            shutil.rmtree(work, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)  # --overwrite or --resume: replaced by the finished run
    work.rename(out)
    print({name: round(s["score"], 4) for name, s in result["held_out_scores"].items()})
    print(f"wrote {args.out}")
    return 0


def _jsonable(args: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(args).items() if k != "func"}
