"""Realized CPU speedup of sliced sub-networks vs their MAC ratio, and OpenVINO INT8 vs FP32.

BERT-base geometry with random weights (no downloads), seq 128, batch 1, 1 thread. One run measures
dense, ~50% and ~20% MAC sub-networks (FFN widths rounded to 64) and an unrounded ~50% one, on
ONNX Runtime fp32 and OpenVINO (f32 and its default precision), plus INT8 (NNCF, random-token
calibration) on OpenVINO. Writes benchmarks/results/speedup.json.

    .venv/bin/python benchmarks/speedup.py [--rounds 10] [--clock wall|cpu] [--out benchmarks/results/speedup.json]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eftnas_deploy import SubnetConfig, SuperNetwork, build_model, count_macs
from eftnas_deploy.core.io import write_json
from exporters.benchmark import artifact_of, runtime_spec
from exporters.bundle import ExportSource, export_bundle
from exporters.quantize import LabeledExamples
from exporters.runtime import cpu_info, make_feeds, open_model, time_interleaved

BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
SEQ_LEN = 128
RUNS = [  # (label, runtime, variant, precision)
    ("ort_fp32", "onnxruntime", "fp32", "fp32"),
    ("ov_f32", "openvino", "fp32", "f32"),
    ("ov_default", "openvino", "fp32", "default"),
    ("ov_int8_f32", "openvino", "int8", "f32"),
    ("ov_int8_default", "openvino", "int8", "default"),
]


def uniform_subnet(geometry: Any, target: float, align: int) -> SubnetConfig:
    """Same heads/FFN in every layer, closest to `target` of the dense MACs, FFN a multiple of `align`."""
    full = count_macs(SubnetConfig.full(geometry), geometry, SEQ_LEN)
    best = None
    for heads in range(1, geometry.num_heads + 1):
        for ffn in range(align, geometry.intermediate_size + 1, align):
            cfg = SubnetConfig((heads,) * geometry.num_layers, (ffn,) * geometry.num_layers)
            err = abs(count_macs(cfg, geometry, SEQ_LEN) / full - target)
            if best is None or err < best[0]:
                best = (err, cfg)
    return best[1]


def random_calibration(vocab: int, n: int) -> LabeledExamples:
    rng = np.random.default_rng(0)
    feats = []
    for _ in range(n):
        ids = rng.integers(1000, vocab, size=(1, SEQ_LEN), dtype=np.int64)
        feats.append({"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})
    return LabeledExamples(feats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds over all models")
    parser.add_argument("--per-round", type=int, default=3, help="timed calls of each model per round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--clock", default="wall", choices=("wall", "cpu"), help="cpu: process CPU time (1 thread; shared machines)"
    )
    parser.add_argument("--calibration-size", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/speedup.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    start = time.perf_counter()
    supernet = SuperNetwork(build_model("bert", "text-classification", **BERT_BASE).eval())
    geometry = supernet.geometry
    subnets = {
        "dense": (SubnetConfig.full(geometry), False),
        "macs50": (uniform_subnet(geometry, 0.5, 64), True),
        "macs20": (uniform_subnet(geometry, 0.2, 64), True),
        "macs50_unaligned": (uniform_subnet(geometry, 0.5, 1), False),
    }
    calibration = random_calibration(geometry.vocab_size, args.calibration_size)
    full_macs = count_macs(SubnetConfig.full(geometry), geometry, SEQ_LEN)
    results: dict[str, Any] = {}
    opened: dict[str, tuple[Any, dict[str, np.ndarray]]] = {}
    described: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (subnet, int8) in subnets.items():
            bundle = Path(tmp) / name
            formats = ["onnx", "openvino"] + (["int8"] if int8 else [])
            t0 = time.perf_counter()
            manifest = export_bundle(
                ExportSource.from_supernet(supernet, subnet),
                bundle,
                formats,
                calibration=calibration if int8 else None,
                subset_size=args.calibration_size,
                ort_optimize=True,
            )
            results[name] = {
                "subnet": subnet.to_dict(),
                "macs": manifest["macs"],
                "macs_fraction": manifest["macs"] / full_macs,
                "export_s": round(time.perf_counter() - t0, 1),
                "parity": manifest["parity"],
                "latency": {},
            }
            for label, runtime, variant, precision in [*RUNS, ("ort_optimized", "onnxruntime", "optimized", "fp32")]:
                if variant == "int8" and not int8:
                    continue
                compiled = open_model(artifact_of(bundle, runtime, variant), runtime_spec(runtime, 1, precision))
                opened[f"{name}/{label}"] = (compiled, make_feeds(compiled.input_names, 1, SEQ_LEN, 1000))
                described[f"{name}/{label}"] = compiled.describe()
        # Every model is timed in alternating rounds, so that load drift hits all of them alike.
        stats = time_interleaved(opened, rounds=args.rounds, per_round=args.per_round, warmup=args.warmup,
                                 clock=args.clock)  # fmt: skip
    for key, timing in stats.items():
        name, label = key.split("/")
        info = described[key]
        results[name]["latency"][label] = {
            "median_ms": timing.median_us / 1e3,
            "p90_ms": timing.p90_us / 1e3,
            "precision": info["precision"],
            "runtime_version": info["runtime_version"],
        }
        print(f"{name:18s} {label:16s} {timing.median_us / 1e3:8.2f} ms ({info['precision']})", flush=True)
    summary = summarize(results)
    report = {
        "benchmark": "speedup",
        "geometry": geometry.to_dict(),
        "weights": "random (torch.manual_seed(0)); latency does not depend on weight values",
        "seq_len": SEQ_LEN,
        "batch": 1,
        "threads": 1,
        "timing": {
            "method": "all models opened at once and timed in interleaved rounds (drift hits all alike)",
            "rounds": args.rounds,
            "per_round": args.per_round,
            "warmup": args.warmup,
            "clock": "process CPU time" if args.clock == "cpu" else "wall clock",
        },
        "int8_calibration": f"{args.calibration_size} random token-id sequences (no task data; accuracy not measured)",
        "cpu": cpu_info(),
        "load_average_1_5_15": list(os.getloadavg()),
        "subnets": results,
        "summary": summary,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, report)
    print(f"wrote {args.out}")


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Speedup ÷ ideal MAC ratio per runtime, and INT8 vs FP32 speedups."""
    dense = results["dense"]
    out: dict[str, Any] = {"goals": {"efficiency_50": 0.9, "efficiency_20": 0.8, "int8_speedup": 1.5}}
    for name, entry in results.items():
        if name == "dense":
            continue
        ideal = dense["macs"] / entry["macs"]
        row: dict[str, Any] = {"ideal_speedup": ideal}
        for label, lat in entry["latency"].items():
            if label in dense["latency"]:
                speedup = dense["latency"][label]["median_ms"] / lat["median_ms"]
                row[label] = {"speedup": speedup, "efficiency": speedup / ideal}
        for precision in ("f32", "default"):
            fp = entry["latency"].get(f"ov_{precision}")
            q = entry["latency"].get(f"ov_int8_{precision}")
            if fp and q:
                row[f"int8_vs_ov_{precision}"] = fp["median_ms"] / q["median_ms"]
        out[name] = row
    return out


if __name__ == "__main__":
    main()
