"""OpenVINO IR through optimum-intel's exporter, with the provenance in the IR's rt_info."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

IR_FILE = "openvino_model.xml"
RT_INFO_KEY = "eftnas"


def export_openvino(sliced_dir: str | Path, out_dir: str | Path, task: str, metadata: dict[str, Any]) -> Path:
    """Export a sliced HF directory with `optimum.exporters.openvino.main_export` (FP32 weights)."""
    from optimum.exporters.openvino import main_export

    out_dir = Path(out_dir)
    main_export(str(sliced_dir), output=out_dir, task=task, trust_remote_code=True)
    embed_metadata(out_dir / IR_FILE, metadata)
    return out_dir / IR_FILE


def embed_metadata(xml: Path, metadata: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Re-save the IR with the provenance JSON under rt_info['eftnas'] (weights stay FP32/INT8 as they are)."""
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    save_with_metadata(model, xml, metadata | (extra or {}))


def save_with_metadata(model: Any, xml: Path, metadata: dict[str, Any]) -> None:
    import openvino as ov

    model.set_rt_info(json.dumps(metadata), [RT_INFO_KEY])
    tmp = xml.with_name(f".tmp-{xml.name}")
    ov.save_model(model, str(tmp), compress_to_fp16=False)
    del model
    tmp.replace(xml)
    tmp.with_suffix(".bin").replace(xml.with_suffix(".bin"))


def read_metadata(xml: str | Path) -> dict[str, Any]:
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    return json.loads(model.get_rt_info([RT_INFO_KEY]).astype(str))
