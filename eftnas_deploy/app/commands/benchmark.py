"""`eftnas-deploy benchmark`: latency of a deployment bundle on this CPU (ONNX Runtime or OpenVINO)."""

from __future__ import annotations

import argparse
import json

from exporters.runtime import RUNTIMES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("benchmark", help="time a deployment bundle (median/p90 latency, throughput)")
    p.add_argument("bundle", help="bundle directory written by `eftnas-deploy export`")
    p.add_argument("--runtime", default="onnxruntime", choices=RUNTIMES)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=None, help="default: 128, or the model's maximum if shorter")
    p.add_argument("--precision", default="default", help="f32, bf16, f16 or default (OpenVINO); ORT runs fp32")
    p.add_argument(
        "--format",
        default="fp32",
        choices=("fp32", "int8", "int8-weights", "int4-weights", "optimized"),
        help="which artifact",
    )
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from exporters.benchmark import benchmark_bundle

    result = benchmark_bundle(
        args.bundle,
        runtime=args.runtime,
        threads=args.threads,
        batch=args.batch,
        seq_len=args.seq_len,
        precision=args.precision,
        variant=args.format,
        warmup=args.warmup,
        repeats=args.repeats,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['runtime']} {args.format} ({result['precision']}, {result['threads']} thread(s) on "
            f"{result['usable_cores']} usable core(s)) static shape [{result['batch']}, {result['seq_len']}]: "
            f"median {result['median_ms']:.3f} ms, "
            f"p90 {result['p90_ms']:.3f} ms, {result['throughput_per_s']:.1f} seq/s on {result['cpu']}"
        )
    return 0
