"""LUT accuracy benchmark: seq 128, batch 1, 1 thread, ONNX Runtime and OpenVINO, on each clock asked for.

For each clock (wall: `perf_counter`, valid on a quiet machine; cpu: process CPU time, robust under load)
builds one LUT per runtime (timed), validates both on the same seeded sub-networks spread across the
cost range (each exported once, measured on both runtimes), and compares the dense model's MAC/s with
a single-thread fp32 GEMM roofline measured in the same run. Writes JSON + PNG under benchmarks/results/.

    .venv/bin/python benchmarks/lut_accuracy.py [--geometry bert-base|small] [--clocks wall cpu] [--samples 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.io import write_json
from eftnas_deploy.core.space import SearchSpace, sample_across_cost
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.metrics import count_macs
from exporters.runtime import RuntimeSpec, cpu_info, load_onnx
from latency_lut.config import config_from_geometry, load_supernet
from latency_lut.export import exported, random_dense_model
from latency_lut.measure import TimingSettings, build_lut, time_onnx
from latency_lut.predict import LatencyPredictor
from latency_lut.validate import plot_validation, validate_luts

BERT_BASE = ModelGeometry("bert", 12, 12, 64, 768, 3072, 30522, 512, 2)
SMALL = ModelGeometry("bert", 4, 4, 64, 256, 1024, 30522, 512, 2)  # the 4-layer hidden-256 case of issue #14
GEOMETRIES = {"bert-base": (BERT_BASE, 256), "small": (SMALL, 128)}  # geometry, FFN width step of the space


def _median_time(fn, repeats: int, now) -> float:
    for _ in range(5):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = now()
        fn()
        samples.append(now() - t0)
    return statistics.median(samples)


def gemm_roofline_macs_per_s(
    m: int = 128, k: int = 768, n: int = 3072, repeats: int = 30, clock: str = "wall"
) -> dict[str, float]:
    """Single-thread fp32 throughput (MAC/s) of a BERT-sized GEMM with torch, numpy (BLAS) and an ORT MatMul."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from threadpoolctl import threadpool_limits

    now = time.process_time if clock == "cpu" else time.perf_counter
    torch.set_num_threads(1)
    a, b = torch.randn(m, k), torch.randn(k, n)
    result = {"torch": m * k * n / _median_time(lambda: a @ b, repeats, now)}
    an, bn = a.numpy(), b.numpy()
    with threadpool_limits(1):
        result["numpy"] = m * k * n / _median_time(lambda: an @ bn, repeats, now)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(bn, "b")],
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gemm.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
        session = load_onnx(path, RuntimeSpec("onnxruntime", 1))
        feeds = {"a": np.ascontiguousarray(an)}
        result["onnxruntime_matmul"] = m * k * n / _median_time(lambda: session(feeds), repeats, now)
    result["best"] = max(result.values())
    return result


def run_clock(args, geometry: ModelGeometry, space: SearchSpace, clock: str, out: Path, tag: str) -> dict:
    """LUTs per runtime, validation on held-out sub-networks and the dense model's MAC/s, all on one clock."""
    config = config_from_geometry(geometry)
    lut_timing = TimingSettings(warmup=3, repeats=10, min_time_s=1.5, stack=4, clock=clock)
    check_timing = TimingSettings(warmup=2, repeats=10, min_time_s=2.0, clock=clock)
    load_before = os.getloadavg()
    started = time.perf_counter()
    roofline = gemm_roofline_macs_per_s(
        k=geometry.hidden_size, n=geometry.intermediate_size, m=args.seq_len, clock=clock
    )
    tables, builds = [], {}
    for runtime in args.runtimes:
        spec = RuntimeSpec.default_for(runtime, threads=1)
        table = build_lut(
            config, geometry, spec, args.seq_len, 1, space, args.grid, lut_timing, calibration_samples=args.calibration
        )
        table.save(out / f"lut_{tag}_{runtime}_{clock}.json")
        tables.append(table)
        builds[runtime] = table.metadata["build_time_s"]

    subnets = sample_across_cost(space, args.samples, seed=1)
    reports = validate_luts(tables, load_supernet(None, geometry, args.seq_len), subnets, check_timing)
    full = SubnetConfig.full(geometry)
    full_macs = count_macs(full, geometry, args.seq_len, 1)
    dense = {}
    with exported(random_dense_model(config, geometry, full)) as path:
        for table in tables:
            spec = RuntimeSpec.default_for(table.runtime, threads=1)
            stats, _ = time_onnx(path, spec, 1, args.seq_len, geometry.vocab_size, check_timing)
            dense[table.runtime] = {
                "median_ms": stats.median_us / 1e3,
                "gmacs": full_macs / stats.median_us / 1e3,
                "fraction_of_gemm_roofline": full_macs / (stats.median_us * 1e-6) / roofline["best"],
                "predicted_ms": LatencyPredictor(table).predict_ms(full),
            }
    plot_validation(
        reports, out / f"lut_accuracy_{tag}_{clock}.png",
        title=f"{tag} LUT, seq {args.seq_len}, 1 thread, {clock} clock",
    )  # fmt: skip
    return {
        "clock": clock,
        "timer": "time.process_time_ns (process CPU time)" if clock == "cpu" else "time.perf_counter_ns (wall)",
        "load_average_before_after": [load_before, os.getloadavg()],
        "time_s": round(time.perf_counter() - started, 1),
        "lut_build_time_s": builds,
        "gemm_roofline_gmacs": {name: v / 1e9 for name, v in roofline.items()},
        "dense_model": dense,
        "accuracy": [{k: v for k, v in r.items() if k != "samples"} for r in reports],
        "samples": {r["runtime"]: r["samples"] for r in reports},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--geometry", default="bert-base", choices=tuple(GEOMETRIES))
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--grid", type=int, default=None, help="widths measured per block kind (default: all)")
    parser.add_argument("--calibration", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--runtimes", nargs="+", default=["onnxruntime", "openvino"])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument(
        "--clocks", nargs="+", default=["wall", "cpu"], choices=("wall", "cpu"),
        help="wall: valid only on a quiet machine; cpu: robust on a shared one (1 thread)",
    )  # fmt: skip
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    geometry, ffn_step = GEOMETRIES[args.geometry]
    n, inter = geometry.num_layers, geometry.intermediate_size
    space = SearchSpace(heads=[range(0, geometry.num_heads + 1)] * n, ffn=[range(0, inter + 1, ffn_step)] * n)
    tag = args.geometry.replace("-", "_")
    result = {
        "machine": cpu_info(),
        "geometry": geometry.to_dict(),
        "seq_len": args.seq_len,
        "batch": 1,
        "threads": 1,
        "grid": args.grid,
        "goal": "95% of held-out sub-networks within ±3% on the wall clock, quiet machine, both runtimes",
        "clocks": {clock: run_clock(args, geometry, space, clock, out, tag) for clock in args.clocks},
    }
    name = "lut_accuracy.json" if args.geometry == "bert-base" else f"lut_accuracy_{tag}.json"
    write_json(out / name, result)
    for clock, part in result["clocks"].items():
        for acc in part["accuracy"]:
            print(
                f"{clock:>4} {acc['runtime']:>11} {acc['precision']}: within ±3% {acc['within_3pct']:.0%}, "
                f"±5% {acc['within_5pct']:.0%}, median {acc['median_abs_pct']:.2f}%, max {acc['max_abs_pct']:.1f}%"
            )


if __name__ == "__main__":
    main()
