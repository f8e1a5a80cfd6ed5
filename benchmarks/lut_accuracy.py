"""LUT accuracy benchmark: BERT-base geometry, seq 128, batch 1, 1 thread, ONNX Runtime and OpenVINO.

Builds one LUT per runtime (timed), validates both on the same seeded sub-networks spread across the
cost range (each exported once, measured on both runtimes), and compares the dense model's MAC/s with
a single-thread fp32 GEMM roofline measured in the same run. Writes JSON + PNG under benchmarks/results/.

    .venv/bin/python benchmarks/lut_accuracy.py [--samples 30] [--grid 7] [--out benchmarks/results]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--grid", type=int, default=None, help="widths measured per block kind (default: all)")
    parser.add_argument("--calibration", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--runtimes", nargs="+", default=["onnxruntime", "openvino"])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--clock", default="cpu", choices=("wall", "cpu"), help="cpu: robust on a shared machine")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    geometry = BERT_BASE
    config = config_from_geometry(geometry)
    space = SearchSpace(heads=[range(0, 13)] * 12, ffn=[range(0, 3073, 256)] * 12)
    lut_timing = TimingSettings(warmup=3, repeats=10, min_time_s=1.5, stack=4, clock=args.clock)
    check_timing = TimingSettings(warmup=2, repeats=10, min_time_s=2.0, clock=args.clock)
    load_before = os.getloadavg()

    started = time.perf_counter()
    roofline = gemm_roofline_macs_per_s(clock=args.clock)
    tables, builds = [], {}
    for runtime in args.runtimes:
        spec = RuntimeSpec.default_for(runtime, threads=1)
        table = build_lut(
            config, geometry, spec, args.seq_len, 1, space, args.grid, lut_timing, calibration_samples=args.calibration
        )
        table.save(out / f"lut_bert_base_{runtime}.json")
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
    result = {
        "machine": cpu_info(),
        "geometry": geometry.to_dict(),
        "seq_len": args.seq_len,
        "batch": 1,
        "threads": 1,
        "grid": args.grid,
        "clock": args.clock,
        "load_average_before_after": [load_before, os.getloadavg()],
        "total_time_s": round(time.perf_counter() - started, 1),
        "lut_build_time_s": builds,
        "gemm_roofline_gmacs": {name: v / 1e9 for name, v in roofline.items()},
        "dense_model": dense,
        "accuracy": [{k: v for k, v in r.items() if k != "samples"} for r in reports],
        "samples": {r["runtime"]: r["samples"] for r in reports},
    }
    write_json(out / "lut_accuracy.json", result)
    plot_validation(reports, out / "lut_accuracy.png", title="BERT-base LUT, seq 128, 1 thread")
    print({k: v for k, v in result.items() if k != "samples"})


if __name__ == "__main__":
    main()
