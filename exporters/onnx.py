"""ONNX through optimum's exporter, with the provenance in the model's metadata and optional ORT fusion."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

ONNX_FILE = "model.onnx"
OPTIMIZED_FILE = "model_optimized.onnx"
METADATA_KEY = "eftnas"

logger = logging.getLogger(__name__)


def export_onnx(sliced_dir: str | Path, out_dir: str | Path, task: str, metadata: dict[str, Any] | None = None) -> Path:
    """Export a sliced HF directory with `optimum.exporters.onnx.main_export` (opset and axes as optimum does).

    The one ONNX export of the toolkit: bundles and latency LUTs both call it. `metadata` (provenance) is
    embedded when given.
    """
    from optimum.exporters.onnx import main_export

    out_dir = Path(out_dir)
    main_export(str(sliced_dir), output=out_dir, task=task, trust_remote_code=True, do_validation=False)
    if metadata is not None:
        embed_metadata(out_dir / ONNX_FILE, metadata)
    return out_dir / ONNX_FILE


def embed_metadata(path: Path, metadata: dict[str, Any]) -> None:
    """Store the provenance JSON in the ONNX model's metadata_props."""
    import onnx

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props[METADATA_KEY] = json.dumps(metadata)
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))


def read_metadata(path: str | Path) -> dict[str, Any]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    return json.loads(props[METADATA_KEY])


def optimize_onnx(
    path: Path, out_path: Path, feeds: dict[str, np.ndarray], atol: float = 1e-4, model_type: str = "bert"
) -> dict[str, Any]:
    """Fuse attention/LayerNorm/GELU with ORT's transformer optimizer; keep the result only if it matches.

    Heads differ per layer in a sub-network, so num_heads/hidden_size are 0: the optimizer reads each
    attention block's own shape from its Reshape nodes. `model_type` is the optimizer's name for the
    family (FamilySpec.ort_optimizer_type).
    """
    import onnxruntime as ort
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(path), model_type=model_type, num_heads=0, hidden_size=0, opt_level=0)
    fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    optimized.save_model_to_file(str(out_path))
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    actual = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"]).run(None, feeds)
    diff = max(float(np.abs(a - e).max()) for a, e in zip(actual, expected))
    if diff > atol:
        out_path.unlink()
        logger.warning("ORT-optimized model differs by %.2e > %.0e; dropped it", diff, atol)
        return {"kept": False, "max_abs_diff": diff, "fused_operators": fused}
    return {"kept": True, "file": out_path.name, "max_abs_diff": diff, "fused_operators": fused}
