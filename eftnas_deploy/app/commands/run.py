"""`eftnas-deploy run`: the whole pipeline from a pipeline.yaml (and/or flags), resumable."""

from __future__ import annotations

import argparse

from eftnas_deploy.app.commands.config_flags import add_run_dir_flags, flag_overrides

# flag -> dotted config key
FLAGS = {
    "model": "model.name",
    "tokenizer": "model.tokenizer",
    "task": "data.task",
    "train_file": "data.train_file",
    "dev_file": "data.dev_file",
    "lut_file": "lut.file",
    "allow_approximate_lut": "lut.allow_approximate",
    "max_latency_ms": "search.max_latency_ms",
    "max_macs": "search.max_macs",
    "evals": "search.evals",
    "seed": "seed",
    "out": "out",
    "adapters": "supernet.adapters",
    "lora_max_rank": "lora.max_rank",
    "lora_ranks": "lora.rank_choices",
    "sparsity": "sparsity.method",
    "sparsity_target": "sparsity.target",
}


METHOD_NAMES = ("eftnas", "lonas", "nls", "shears")  # pipeline.config.METHODS' keys (kept out: no config import)


def _ranks(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of ranks, e.g. 32,24,16") from None


def _fraction_or_pattern(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # "2:4"; checked with the config


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run the whole pipeline (teacher → ... → bundle + report), resumable")
    p.add_argument("--config", help="pipeline.yaml (default: built-in defaults plus the flags)")
    p.add_argument("--model", help="hub name or directory of the pretrained model")
    p.add_argument("--tokenizer", help="tokenizer (default: the model's)")
    p.add_argument("--task", help="glue task or squad / squad_v2")
    p.add_argument("--train-file", help="local training file (default: the hub dataset)")
    p.add_argument("--dev-file", help="local dev file")
    p.add_argument("--lut-file", help="a LUT measured on the target device (default: measure on this CPU)")
    p.add_argument(
        "--allow-approximate-lut",
        action="store_const",
        const=True,
        help="use a --lut-file measured for another target; its target then replaces the config's (recorded)",
    )
    p.add_argument("--max-latency-ms", type=float, help="latency budget (LUT-predicted ms)")
    p.add_argument("--max-macs", type=float, help="budget in millions of MACs")
    p.add_argument("--evals", type=int, help="search evaluations")
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--method",
        choices=METHOD_NAMES,
        help="a named method: eftnas (train every weight), lonas (LoRA super-adapters + elastic widths), nls "
        "(elastic-rank LoRA on full widths), shears (nls on a Wanda 50%% sparse base); the config file, flags "
        "and --set still win for any key they set",
    )
    p.add_argument(
        "--adapters", choices=("none", "lora"), help="lora: LoRA super-adapters on a frozen base (LoNAS/NLS)"
    )
    p.add_argument("--lora-max-rank", type=int, help="rank of the LoRA super-adapter")
    p.add_argument("--lora-ranks", type=_ranks, help="rank choices per layer and group, e.g. 32,24,16")
    p.add_argument("--sparsity", choices=("none", "wanda"), help="prune the teacher before super-adapter training")
    p.add_argument("--sparsity-target", type=_fraction_or_pattern, help="a fraction (0.5) or an N:M pattern (2:4)")
    add_run_dir_flags(p, "supernet.epochs=2")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eftnas_deploy.app.pipeline.config import load_config, method_overrides
    from eftnas_deploy.app.pipeline.resolved import check_config_file, describe_sources
    from eftnas_deploy.app.pipeline.runner import run_pipeline

    overrides, sets = flag_overrides(args, FLAGS)
    file_data = check_config_file(args.config, overrides) if args.config else {}
    preset = method_overrides(args.method, overrides, file_data) if args.method else {}
    config = load_config(args.config, {**preset, **overrides})
    if args.config:  # what the file set, what flags changed, and which sections are defaults only
        flags = {key: f"--{flag.replace('_', '-')}" for flag, key in FLAGS.items() if getattr(args, flag) is not None}
        flags.update({key: f"--method {args.method}" for key in preset})
        lines = describe_sources(config, file_data, str(args.config), flags, set(sets))
        print("resolved config (values that are not defaults, with their source):\n" + "\n".join(lines), flush=True)
    run_pipeline(config, overwrite=args.overwrite)
    print(f"pipeline finished: {config.out}/report.md")
    return 0
