"""`eftnas-deploy decoder`: a Llama/Qwen2 causal LM to a stateful OpenVINO model within an ms/token budget."""

from __future__ import annotations

import argparse

from eftnas_deploy.app.commands.config_flags import add_run_dir_flags, flag_overrides

HELP = "decoder LLM (Llama/Qwen2): elastic super-network → ms/token search → stateful OpenVINO IR, resumable"
# flag -> dotted config key
FLAGS = {
    "model": "model.name",
    "train_file": "data.train",
    "dev_file": "data.dev",
    "lut_file": "lut.file",
    "max_ms_per_token": "search.max_ms_per_token",
    "max_ttft_ms": "search.max_ttft_ms",
    "max_fraction": "search.max_fraction",
    "objective": "search.objective",
    "evals": "search.evals",
    "weights": "export.weights",
    "seed": "seed",
    "out": "out",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("decoder", help=HELP)
    p.add_argument("--config", help="decoder.yaml (sections model, data, importance, space, supernet, lut, ...)")
    p.add_argument("--model", help="hub name or directory of a LlamaForCausalLM / Qwen2ForCausalLM")
    p.add_argument("--train-file", help="training text: a .txt/.jsonl file or a dataset name")
    p.add_argument("--dev-file", help="held-out text (default: the end of the training text)")
    p.add_argument("--lut-file", help="a decoder LUT measured on the target (default: measure on this CPU)")
    p.add_argument("--max-ms-per-token", type=float, help="budget: LUT-predicted ms per generated token")
    p.add_argument("--max-ttft-ms", type=float, help="budget: LUT-predicted time to first token (ms)")
    p.add_argument("--max-fraction", type=float, help="budget: fraction of the full model's predicted objective")
    p.add_argument("--objective", choices=("ms_per_token", "ttft_ms"), help="the latency traded against perplexity")
    p.add_argument("--evals", type=int, help="search evaluations")
    p.add_argument("--weights", help="OpenVINO IRs to write: fp32,int8,int4 (comma-separated)")
    p.add_argument("--seed", type=int)
    add_run_dir_flags(p, "supernet.steps=100")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eftnas_deploy.app.decoder.config import load_decoder_config
    from eftnas_deploy.app.decoder.run import run_decoder

    overrides, _ = flag_overrides(args, FLAGS)
    config = load_decoder_config(args.config, overrides)
    report = run_decoder(config, overwrite=args.overwrite)
    chosen = report["chosen"]
    print(f"chosen: perplexity {chosen['perplexity']:.3f} (full {report['full']['perplexity']:.3f}), "
          f"predicted {chosen.get('ms_per_token', float('nan')):.3f} ms/token")  # fmt: skip
    print(f"decoder run finished: {config.out}/report.md")
    return 0
