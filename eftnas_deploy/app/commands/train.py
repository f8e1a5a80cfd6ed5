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
from eftnas_deploy.app.commands.run import _fraction_or_pattern
from eftnas_deploy.app.commands.run import _ranks as _rank_list
from eftnas_deploy.app.pipeline.config import (
    ADAPTERS,
    SPARSITY_METHODS,
    DataConfig,
    LoraSettings,
    ModelConfig,
    SparsitySettings,
    SupernetConfig,
    TeacherConfig,
)
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
    add_config_flag(
        supernet, SupernetConfig, "hidden_kd_weight", help="layer-wise KD on every layer's hidden states, this weight"
    )
    add_config_flag(supernet, SupernetConfig, "growth", choices=GROWTH, help="progressive FFN growth (ELM)")
    add_config_flag(supernet, SupernetConfig, "growth_stages", help="growth stages (0: one per epoch)")
    add_config_flag(supernet, SupernetConfig, "save_steps", help="checkpoint every N steps (0: none)")
    lora = supernet.add_argument_group("LoRA super-adapters on the frozen model (LoNAS / Shears NLS)")
    add_config_flag(lora, SupernetConfig, "adapters", choices=ADAPTERS, help="lora: train adapters only")
    add_config_flag(lora, LoraSettings, "max_rank", "--lora-max-rank", dest="lora_max_rank")
    lora.add_argument(
        "--lora-ranks", type=_rank_list, help="rank choices per layer and group, e.g. 32,24,16 (default: r, 3r/4, r/2)"
    )
    add_config_flag(lora, LoraSettings, "alpha", "--lora-alpha", dest="lora_alpha", help="default: 2 x max rank")
    add_config_flag(lora, SparsitySettings, "method", "--sparsity", dest="sparsity", choices=SPARSITY_METHODS)
    lora.add_argument(
        "--sparsity-target", type=_fraction_or_pattern, default=config_default(SparsitySettings, "target"),
        help="a fraction (0.5) or an N:M pattern (2:4)",
    )  # fmt: skip
    add_config_flag(lora, SparsitySettings, "calibration_batches", dest="calibration_batches")
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
    if args.sparsity != "none" and cfg.adapters != "lora":
        raise EftnasError(f"sparsity: {args.sparsity} needs --adapters lora (training every weight refills the pruned)")
    data_cfg = _data_config(args)
    kd = KDConfig(
        args.kd_temperature, args.kd_task_weight, args.kd_distill_weight,
        rkd_weight=cfg.rkd_weight, hidden_weight=cfg.hidden_kd_weight,
    )  # fmt: skip
    task, data = _train_rows(args)
    tokenizer = _tokenizer(args)
    if work.exists() and not args.resume:
        shutil.rmtree(work)  # left by an interrupted run; --resume would continue it
    try:
        rest, held = held_out_split(data, work, args.held_out_fraction, args.seed)
        train = prepare_split(task, rest, tokenizer, args.max_length, train=True)
        held_out = prepare_split(task, held, tokenizer, args.max_length)
        space = SearchSpace.load(args.search_space) if args.search_space else None
        if cfg.adapters == "lora":
            result = _train_adapters(args, cfg, data_cfg, kd, tokenizer, space, train, held_out, work)
        else:
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


def _train_adapters(args, cfg, data_cfg, kd, tokenizer, space, train, held_out, work: Path) -> dict:
    """`train-supernet --adapters lora`: the pipeline's super-adapter training (optionally on a pruned base)."""
    from eftnas_deploy.app.pipeline.adapters import train_lora_supernet
    from eftnas_deploy.app.pipeline.stages import _trainer_args
    from eftnas_deploy.core.geometry import ModelGeometry
    from eftnas_deploy.core.space import SearchSpace
    from eftnas_deploy.data.split import HELD_OUT_FILE
    from eftnas_deploy.families.sources import model_config
    from eftnas_deploy.space.lora import with_rank_dimensions

    flags = {"max_rank": "lora-max-rank", "rank_choices": "lora-ranks", "alpha": "lora-alpha"}
    lora = config_from_args(
        LoraSettings, argparse.Namespace(), flags=flags, max_rank=args.lora_max_rank, rank_choices=args.lora_ranks,
        alpha=args.lora_alpha,
    )  # fmt: skip
    sparsity = config_from_args(
        SparsitySettings, argparse.Namespace(), flags={"method": "sparsity", "target": "sparsity-target"},
        method=args.sparsity, target=args.sparsity_target, calibration_batches=args.calibration_batches,
    )  # fmt: skip
    geometry = ModelGeometry.from_config(model_config(args.model, "model"), train.task.model_task)
    space = space or SearchSpace.full_range(geometry)
    if not set(space.dimensions) & {"lora_qkv", "lora_up", "lora_down"}:
        space = with_rank_dimensions(space, lora.ranks, lora.groups, lora.elastic_widths, geometry)
    return train_lora_supernet(
        cfg, lora, sparsity, data_cfg, model_dir=args.model, tokenizer=tokenizer, search_space=space,
        teacher_dir=args.teacher, train=train, held_out=held_out, held_out_file=work / HELD_OUT_FILE, work=work,
        seed=args.seed, space_kind=space.metadata.get("kind", "file" if args.search_space else "full-range"), kd=kd,
        trainer_args=lambda out: _trainer_args(out, cfg, args.seed, args.group_by_length, cfg.save_steps,
                                               max_steps=args.max_steps),
    )  # fmt: skip


def _jsonable(args: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(args).items() if k != "func"}
