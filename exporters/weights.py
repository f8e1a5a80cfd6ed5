"""Weight-only compression of an OpenVINO IR with `nncf.compress_weights` (INT8 per channel, INT4 per group).

Data-free: weights are stored in 8 or 4 bits and decompressed on the fly; activations stay in floating point.
On a CPU this mostly buys a smaller file and less memory traffic, not the INT8 GEMMs of `nncf.quantize`
(the `int8` format). INT4 groups of `group_size` input channels; a layer whose channels a group does not
divide gets the largest smaller group that does (NNCF's ADJUST fallback, down to 32), or stays in the
backup INT8 mode. What was done is recorded with the model: mode, group size, ratio, NNCF's version, sizes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters.openvino import IR_FILE, save_with_metadata
from exporters.quantize import LabeledExamples, compare_scores


@dataclass(frozen=True)
class WeightMode:
    """One weight-only compression: NNCF's mode name and, for INT4, the group size (None: per channel)."""

    nncf_mode: str
    group_size: int | None = None


WEIGHT_MODES = {
    "int8-weights": WeightMode("INT8_ASYM"),
    "int4-weights": WeightMode("INT4_ASYM", group_size=128),
}


def ir_size_bytes(xml: str | Path) -> int:
    """Bytes on disk of an IR (its .xml and .bin)."""
    xml = Path(xml)
    return sum(p.stat().st_size for p in (xml, xml.with_suffix(".bin")) if p.is_file())


def compress_model(model: Any, mode: WeightMode) -> tuple[Any, dict[str, Any]]:
    """`nncf.compress_weights` of an `ov.Model` in `mode`; (compressed model, what was done)."""
    import nncf

    kwargs: dict[str, Any] = {"mode": getattr(nncf.CompressWeightsMode, mode.nncf_mode)}
    if mode.group_size is not None:
        kwargs |= {
            "group_size": mode.group_size,
            "ratio": 1.0,
            "advanced_parameters": nncf.AdvancedCompressionParameters(
                group_size_fallback_mode=nncf.GroupSizeFallbackMode.ADJUST
            ),
        }
    report = {
        "method": "nncf.compress_weights",
        "nncf_version": nncf.__version__,
        "mode": mode.nncf_mode,
        "group_size": mode.group_size,
        "group_size_fallback": "adjust (min 32)" if mode.group_size is not None else None,
        "ratio": 1.0,
        "activations": "floating point (weights decompressed at run time)",
    }
    return nncf.compress_weights(model, **kwargs), report


def compress_weights_openvino(
    ov_dir: str | Path,
    out_dir: str | Path,
    mode: WeightMode,
    evaluation: LabeledExamples | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a weight-compressed copy of an FP32 IR directory; return what was done and the score before/after."""
    import openvino as ov

    ov_dir, out_dir = Path(ov_dir), Path(out_dir)
    compressed, report = compress_model(ov.Core().read_model(str(ov_dir / IR_FILE)), mode)
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in ov_dir.iterdir():
        if item.is_file() and not item.name.startswith("openvino_model."):
            shutil.copy2(item, out_dir / item.name)
    report |= compare_scores(ov_dir / IR_FILE, compressed, evaluation, name="compressed")
    save_with_metadata(compressed, out_dir / IR_FILE, (metadata or {}) | {"weight_compression": report})
    report["size_bytes"] = {"fp32": ir_size_bytes(ov_dir / IR_FILE), "compressed": ir_size_bytes(out_dir / IR_FILE)}
    return report
