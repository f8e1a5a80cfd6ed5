"""Deployment checks of the export stage: per-runtime latency of the bundles and super-network/sliced parity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.supernet.elastic import SuperNetwork

# (runtime, requested precision, bundle variant): the ways a bundle is timed.
RUNS = (
    ("onnxruntime", "fp32", "fp32"),
    ("openvino", "f32", "fp32"),
    ("openvino", "default", "fp32"),
    ("openvino", "default", "int8"),
    ("openvino", "default", "int8-weights"),
    ("openvino", "default", "int4-weights"),
)
BUNDLES = {"chosen": "bundle", "full": "full_model"}


def benchmark_all(work: Path, threads: int, batch: int, seq_len: int, repeats: int) -> list[dict[str, Any]]:
    """Time every artifact the chosen and full-model bundles hold, in one run, with the project's harness."""
    from exporters.benchmark import artifact_of, benchmark_bundle

    rows = []
    for model, directory in BUNDLES.items():
        bundle = work / directory
        if not bundle.is_dir():
            continue
        for runtime, precision, variant in RUNS:
            try:
                artifact_of(bundle, runtime, variant)
            except EftnasError:
                continue  # format not exported
            result = benchmark_bundle(
                bundle, runtime, threads, batch, seq_len, precision, variant, warmup=5, repeats=repeats
            )
            rows.append(
                {
                    "model": model,
                    "runtime": runtime,
                    "variant": variant,
                    "precision_requested": precision,
                    "precision": result["precision"],
                    "median_ms": result["median_ms"],
                    "p90_ms": result["p90_ms"],
                    **{k: result[k] for k in ("threads", "usable_cores", "threads_oversubscribed", "shape_mode")},
                }
            )
    return rows


def speedups(timings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Full-model median / chosen median for each runtime and precision measured for both (FP32 bundles)."""
    full = {(r["runtime"], r["precision_requested"]): r for r in timings if r["model"] == "full"}
    out = []
    for row in timings:
        key = (row["runtime"], row["precision_requested"])
        if row["model"] == "chosen" and row["variant"] == "fp32" and key in full:
            out.append({**row, "full_ms": full[key]["median_ms"], "speedup": full[key]["median_ms"] / row["median_ms"]})
    return out


def sliced_parity(supernet: SuperNetwork, subnet: SubnetConfig, pytorch_dir: Path) -> float:
    """Max abs logit difference between the super-network running `subnet` and the exported sliced model."""
    import torch

    from eftnas_deploy.families.models import model_input_names
    from eftnas_deploy.supernet.slicing import load_sliced
    from exporters.parity import padded_inputs, pytorch_outputs

    feeds = padded_inputs(supernet.geometry.vocab_size, input_names=model_input_names(supernet.model))
    sliced = load_sliced(Path(pytorch_dir) / "pytorch").eval()
    with torch.no_grad(), supernet.activate(subnet):
        expected = pytorch_outputs(supernet.model, feeds)
    got = pytorch_outputs(sliced, feeds)
    return max(float(np.abs(got[k] - v).max()) for k, v in expected.items())
