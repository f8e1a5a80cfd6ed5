"""Latency of a bundle's artifacts, measured with the project's one timing harness (exporters.runtime).

What is timed is what `benchmark_app -shape ... -hint none -nstreams 1 -nthreads N` times: the model compiled
for one static input shape, inputs set once, inference alone. The shape is checked against the model's
position embeddings first, and every run's outputs against the shapes the task head must produce.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.family import get_family
from eftnas_deploy.core.geometry import ModelGeometry
from exporters.bundle import read_manifest
from exporters.provenance import max_seq_len
from exporters.runtime import OutputCheck, RuntimeSpec, cpu_info, make_feeds, open_model, time_model

# (runtime, variant) -> bundle format holding it and the file inside that format's directory
VARIANTS = {
    ("onnxruntime", "fp32"): ("onnx", "model.onnx"),
    ("onnxruntime", "optimized"): ("onnx", "model_optimized.onnx"),
    ("openvino", "fp32"): ("openvino", "openvino_model.xml"),
    ("openvino", "int8"): ("int8", "openvino_model.xml"),
    ("openvino", "int8-weights"): ("int8-weights", "openvino_model.xml"),
    ("openvino", "int4-weights"): ("int4-weights", "openvino_model.xml"),
}
PRECISION_ALIASES = {"onnxruntime": {"f32": "fp32", "default": "fp32"}, "openvino": {"fp32": "f32"}}


def runtime_spec(runtime: str, threads: int, precision: str) -> RuntimeSpec:
    """A RuntimeSpec, accepting f32/fp32 and 'default' for either runtime."""
    return RuntimeSpec(runtime, threads, PRECISION_ALIASES.get(runtime, {}).get(precision, precision))


def artifact_of(bundle: str | Path, runtime: str, variant: str = "fp32") -> Path:
    """The model file a bundle holds for `runtime` and `variant` (fp32, int8, optimized)."""
    if (runtime, variant) not in VARIANTS:
        choices = sorted(v for r, v in VARIANTS if r == runtime)
        raise EftnasError(f"format: {variant!r} is not available for {runtime} (expected one of {choices})")
    manifest = read_manifest(bundle)
    fmt, file = VARIANTS[(runtime, variant)]
    if fmt not in manifest["formats"]:
        raise EftnasError(f"format: bundle {bundle} has no {fmt} export (it has {sorted(manifest['formats'])})")
    path = inside_bundle(bundle, manifest["formats"][fmt].get("dir"), f"formats.{fmt}.dir") / file
    if not path.is_file():
        raise EftnasError(f"format: {path} is missing (export with the option that writes it)")
    return path


def inside_bundle(bundle: str | Path, relative: object, field: str) -> Path:
    """`bundle/relative`, refused unless it stays inside the bundle (no absolute path, `..` or symlink out)."""
    root = Path(bundle).resolve()
    if not isinstance(relative, str) or not relative or Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise EftnasError(f"{field}: {relative!r} in {Path(bundle) / 'bundle.json'} must be a path inside the bundle")
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise EftnasError(f"{field}: {relative!r} in {Path(bundle) / 'bundle.json'} leads outside the bundle")
    return path


def check_seq_len(geometry: ModelGeometry, seq_len: int, where: str = "the model") -> None:
    """Refuse a sequence length beyond the model's position embeddings (it would time an empty or failing run)."""
    limit = max_seq_len(geometry)
    if not 1 <= seq_len <= limit:
        raise EftnasError(
            f"seq-len: {seq_len} does not fit {where}: its position embeddings allow 1..{limit} "
            f"(max_position_embeddings {geometry.max_position_embeddings})"
        )


def output_check(
    output_names: Sequence[str], batch: int, seq_len: int, num_labels: int | None = None, where: str = "model"
) -> OutputCheck:
    """A check of one run's outputs: logits [batch, num_labels], QA start/end logits [batch, seq_len].

    Outputs it does not know must still be non-empty with the batch as first dimension.
    """
    expected: dict[str, tuple[int | None, ...]] = {
        "logits": (batch, num_labels),
        "start_logits": (batch, seq_len),
        "end_logits": (batch, seq_len),
    }

    def check(outputs: list[np.ndarray]) -> None:
        if len(outputs) != len(output_names):
            raise EftnasError(f"output: {where} returned {len(outputs)} outputs, expected {len(output_names)}")
        for name, value in zip(output_names, outputs):
            shape = tuple(np.shape(value))
            want = expected.get(name, (batch,) + (None,) * max(0, len(shape) - 1))
            ok = len(shape) == len(want) and all(w is None or s == w for s, w in zip(shape, want))
            if not ok or 0 in shape:
                wanted = "x".join("?" if w is None else str(w) for w in want)
                raise EftnasError(
                    f"output: {where} returned {name} of shape {list(shape)} at input [{batch}, {seq_len}], "
                    f"expected [{wanted}]"
                )

    return check


def benchmark_model(
    path: str | Path,
    spec: RuntimeSpec,
    batch: int = 1,
    seq_len: int = 128,
    vocab_size: int = 1000,
    warmup: int = 10,
    repeats: int = 50,
    num_labels: int | None = None,
) -> dict[str, Any]:
    """Median/p90 latency and throughput of one model file, compiled for the static shape [batch, seq_len].

    Every run's outputs are checked (`output_check`); a runtime error at that shape becomes one EftnasError.
    """
    if batch < 1 or seq_len < 1:
        raise EftnasError(f"batch/seq-len: must be positive, got {batch}/{seq_len}")
    try:
        compiled = open_model(path, spec, static_shape=(batch, seq_len))
        feeds = make_feeds(compiled.input_names, batch, seq_len, vocab_size=vocab_size)
        check = output_check(compiled.output_names, batch, seq_len, num_labels, where=Path(path).name)
        check(compiled(feeds))
    except EftnasError:
        raise
    except Exception as exc:  # runtime errors (shape inference, broadcasting) are long; keep their first line
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise EftnasError(f"seq-len: {path} cannot run at input shape [{batch}, {seq_len}] ({first})") from exc
    stats = time_model(compiled, feeds, warmup=warmup, repeats=repeats, check=check)
    return {
        "model": str(path),
        **compiled.describe(),
        "batch": batch,
        "seq_len": seq_len,
        "input_shape": [batch, seq_len],
        "median_ms": stats.median_us / 1e3,
        "p90_ms": stats.p90_us / 1e3,
        "throughput_per_s": batch / (stats.median_us / 1e6),
        "timing": stats.to_dict(),
    }


def benchmark_bundle(
    bundle: str | Path,
    runtime: str = "onnxruntime",
    threads: int = 1,
    batch: int = 1,
    seq_len: int | None = None,
    precision: str = "default",
    variant: str = "fp32",
    warmup: int = 10,
    repeats: int = 50,
) -> dict[str, Any]:
    """Time one artifact of a bundle; the result names the sub-network, MACs, precision and CPU."""
    manifest = read_manifest(bundle)
    geometry = manifest.get("parent_geometry")
    if not isinstance(geometry, dict) or "vocab_size" not in geometry:
        raise EftnasError(f"bundle: {Path(bundle) / 'bundle.json'} has no parent_geometry (not a complete bundle)")
    vocab = geometry["vocab_size"]
    positions = geometry.get("max_position_embeddings")
    if positions is not None:
        limit = positions - get_family(geometry.get("model_type", "bert")).position_offset
        seq_len = seq_len or min(128, limit)
        if not 1 <= seq_len <= limit:
            raise EftnasError(
                f"seq-len: {seq_len} does not fit the model's {positions} position embeddings (at most {limit})"
            )
    seq_len = seq_len or 128
    path = artifact_of(bundle, runtime, variant)
    spec = runtime_spec(runtime, threads, precision)
    parent = ModelGeometry.from_dict(geometry)
    check_seq_len(parent, seq_len, where=f"the model of {bundle}")
    num_labels = parent.num_labels if parent.task == "text-classification" else None
    result = benchmark_model(path, spec, batch, seq_len, vocab, warmup, repeats, num_labels)
    if variant == "int8":
        result["precision"] = f"int8 (other ops {result['precision']})"
    return {
        "bundle": str(bundle),
        "variant": variant,
        "subnet": manifest["subnet"],
        "macs": manifest["macs"],
        "macs_full": manifest["macs_full"],
        **result,
        **cpu_info(),
    }
