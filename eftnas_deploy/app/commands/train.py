"""`eftnas-deploy train-teacher` and `train-supernet`: the teacher and super-network training stages."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.family import family_names
from eftnas_deploy.core.io import atomic_output_dir, check_output_dir, write_json
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.data import get_task, held_out_split, load_split, prepare_split
from eftnas_deploy.data.loading import parse_columns
from eftnas_deploy.evaluation import evaluate
from eftnas_deploy.families.sources import load_tokenizer
from eftnas_deploy.supernet.elastic import SuperNetwork
from eftnas_deploy.training import (
    DISTILL_SOURCES,
    STRATEGIES,
    KDConfig,
    SuperNetTrainer,
    collator_for,
    load_teacher,
    teacher_from_config,
    train_teacher,
    training_arguments,
)
from eftnas_deploy.training.checkpoints import last_complete_checkpoint


def register(subparsers: argparse._SubParsersAction) -> None:
    teacher = subparsers.add_parser("train-teacher", help="fine-tune (or train from scratch) the teacher on a task")
    _data_arguments(teacher)
    teacher.add_argument("--model", help="pretrained model (hub name or directory) to fine-tune")
    teacher.add_argument("--from-scratch", action="store_true", help="build the model from a config instead")
    teacher.add_argument("--model-type", default="bert", choices=family_names())
    teacher.add_argument("--layers", type=int, default=4)
    teacher.add_argument("--hidden-size", type=int, default=256)
    teacher.add_argument("--heads", type=int, default=4)
    teacher.add_argument("--intermediate-size", type=int, default=1024)
    teacher.set_defaults(func=run_teacher)

    supernet = subparsers.add_parser("train-supernet", help="train a weight-sharing super-network")
    _data_arguments(supernet)
    supernet.add_argument("--model", required=True, help="model directory to turn into the super-network")
    supernet.add_argument("--search-space", help="search_space.json (default: every head count, 8 FFN widths)")
    supernet.add_argument("--strategy", default="full", choices=STRATEGIES)
    supernet.add_argument("--num-random", type=int, default=1, help="random sub-networks per step (k)")
    supernet.add_argument("--teacher", help="fine-tuned teacher directory for external-teacher KD (recommended)")
    supernet.add_argument(
        "--distill-from", default="teacher", choices=DISTILL_SOURCES,
        help="with --teacher: every sub-network follows it (teacher), or students follow the largest (largest)",
    )  # fmt: skip
    supernet.add_argument("--kd-temperature", type=float, default=2.0)
    supernet.add_argument("--kd-task-weight", type=float, default=0.1)
    supernet.add_argument("--kd-distill-weight", type=float, default=0.9)
    supernet.add_argument("--held-out-fraction", type=float, default=0.1, help="train rows kept for search")
    supernet.add_argument("--save-steps", type=int, default=0, help="checkpoint every N steps (0: none)")
    supernet.add_argument("--resume", action="store_true", help="resume from the last checkpoint")
    supernet.set_defaults(func=run_supernet)


def _data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="glue task (cola, sst2, mrpc, ...) or squad / squad_v2")
    p.add_argument("--train-file", help="local .tsv/.csv/.json(l) file (default: the hub dataset)")
    p.add_argument("--columns", help="column mapping, e.g. 'sentence=text,label=target' or 'label=0,sentence1=3'")
    p.add_argument("--tokenizer", help="tokenizer directory or name (default: the model's)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-train-rows", type=int, help="subsample the training rows (seeded)")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")


def _train_split(args: argparse.Namespace):
    task = get_task(args.task)
    data = load_split(task, args.train_file, columns=parse_columns(args.columns))
    if args.max_train_rows and args.max_train_rows < len(data):
        data = data.shuffle(seed=args.seed).select(range(args.max_train_rows))
    return task, data


def _tokenizer(args: argparse.Namespace):
    source = args.tokenizer or args.model
    if not source:
        raise EftnasError("tokenizer: pass --tokenizer (a model trained from scratch has none)")
    return load_tokenizer(source, "tokenizer" if args.tokenizer else "model")


def run_teacher(args: argparse.Namespace) -> int:
    check_output_dir(args.out, args.overwrite)
    if bool(args.model) == bool(args.from_scratch):
        raise EftnasError("model: pass exactly one of --model or --from-scratch")
    task, data = _train_split(args)
    tokenizer = _tokenizer(args)
    if args.from_scratch:
        model = teacher_from_config(
            task,
            tokenizer,
            args.model_type,
            num_hidden_layers=args.layers,
            hidden_size=args.hidden_size,
            num_attention_heads=args.heads,
            intermediate_size=args.intermediate_size,
            max_position_embeddings=max(512, args.max_length),
        )
    else:
        model = load_teacher(args.model, task)
    train = prepare_split(task, data, tokenizer, args.max_length, train=True)
    start = time.perf_counter()
    with atomic_output_dir(args.out, args.overwrite) as out:
        train_teacher(model, train, tokenizer, out / "trainer", **_trainer_kwargs(args))
        shutil.rmtree(out / "trainer", ignore_errors=True)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        write_json(out / "train_config.json", {**_jsonable(args), "wall_s": round(time.perf_counter() - start, 1)})
    print(f"wrote {args.out}")
    return 0


def _trainer_kwargs(args: argparse.Namespace) -> dict:
    return dict(
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=args.seed,
    )


def run_supernet(args: argparse.Namespace) -> int:
    if not args.resume:
        check_output_dir(args.out, args.overwrite)
    task, data = _train_split(args)
    tokenizer = _tokenizer(args)
    supernet = SuperNetwork.from_pretrained(args.model, task=task.model_task)
    space = SearchSpace.load(args.search_space) if args.search_space else SearchSpace.full_range(supernet.geometry)
    space.validate(supernet.geometry)
    teacher = load_teacher(args.teacher, task) if args.teacher else None
    checkpoints = Path(f"{Path(args.out).resolve()}-checkpoints")
    rest, held = held_out_split(data, checkpoints, args.held_out_fraction, args.seed)
    train = prepare_split(task, rest, tokenizer, args.max_length, train=True)
    held_out = prepare_split(task, held, tokenizer, args.max_length)
    save = dict(save_strategy="steps", save_steps=args.save_steps) if args.save_steps else {}
    trainer = SuperNetTrainer(
        supernet=supernet,
        search_space=space,
        strategy=args.strategy,
        num_random=args.num_random,
        teacher=teacher,
        kd=KDConfig(args.kd_temperature, args.kd_task_weight, args.kd_distill_weight),
        distill_from=args.distill_from,
        args=training_arguments(checkpoints, **_trainer_kwargs(args), **save),
        train_dataset=train.features,
        data_collator=collator_for(train, tokenizer),
        processing_class=tokenizer,
    )
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=last_complete_checkpoint(checkpoints) if args.resume else None)
    wall = round(time.perf_counter() - start, 1)
    scores = {name: evaluate(supernet, s, held_out) for name, s in _corners(space).items()}
    with atomic_output_dir(args.out, overwrite=True if args.resume else args.overwrite) as out:
        supernet.save_pretrained(out)
        tokenizer.save_pretrained(out)
        space.save(out / "search_space.json")
        (out / "held_out.json").write_text((checkpoints / "held_out.json").read_text())
        write_json(out / "train_config.json", {**_jsonable(args), "train_wall_s": wall})
        write_json(out / "held_out_scores.json", scores)
    print({name: round(s["score"], 4) for name, s in scores.items()})
    print(f"wrote {args.out}")
    return 0


def _corners(space: SearchSpace) -> dict:
    return {"largest": space.largest(), "middle": space.middle(), "smallest": space.smallest()}


def _jsonable(args: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(args).items() if k != "func"}
