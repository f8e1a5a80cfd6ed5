"""Stateful OpenVINO IR of a sliced decoder LLM (optimum-intel, `text-generation-with-past`), optionally INT8.

optimum-intel traces the model with dummy past key/values of one shape for every layer
(`num_key_value_heads` x `head_dim` from the config) and keeps them as the IR's internal state. A sliced
decoder whose kept layers hold different numbers of KV groups, or that drops a layer's attention while
keeping its MLP (its cache slot then only counts tokens), does not fit those inputs. So attention must be
uniform across the layers the dense model builds; MLP widths stay per layer, and depth is elastic because a
layer that drops both blocks is not built at all (see `supernet.decoder_slicing`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.supernet.decoder_slicing import check_decoder_dir
from exporters.openvino import IR_FILE, save_with_metadata

DECODER_TASK = "text-generation-with-past"


def check_uniform_attention(config: Any) -> int:
    """The KV groups every built layer keeps; EftnasError unless they are equal and non-zero."""
    subnet = getattr(config, "eftnas_subnet", None)
    if not subnet:
        raise EftnasError("model: not a sliced EFTNAS decoder (config.eftnas_subnet is missing)")
    kept = getattr(config, "eftnas_layers", None) or list(range(len(subnet["heads"])))
    groups = [subnet["heads"][i] for i in kept]
    if len(set(groups)) != 1 or groups[0] == 0:
        raise EftnasError(
            f"subnet: KV groups per built layer are {groups}; the OpenVINO stateful export needs the same non-zero "
            "number in every layer (optimum's KV-cache state has one shape for all layers); vary MLP width and "
            "depth (a layer dropping both blocks is removed) instead"
        )
    return groups[0]


def export_decoder_openvino(
    sliced_dir: str | Path,
    out_dir: str | Path,
    int8: bool = False,
    metadata: dict[str, Any] | None = None,
    weights: str | None = None,
) -> Path:
    """Export a sliced decoder directory to a stateful IR: FP32 weights, or `weights` "int8" / "int4"
    (`nncf.compress_weights`: INT8 per channel, INT4 in groups of 128 with NNCF's ADJUST fallback; mode and
    group size recorded in the IR's rt_info). `int8=True` is `weights="int8"`."""
    from optimum.exporters.openvino import main_export

    config = check_decoder_dir(sliced_dir)  # its auto_map names only the toolkit's modeling file
    groups = check_uniform_attention(config)
    out_dir = Path(out_dir)
    main_export(str(sliced_dir), output=out_dir, task=DECODER_TASK, trust_remote_code=True, stateful=True)
    xml = out_dir / IR_FILE
    info = {**(metadata or {}), "subnet": config.eftnas_subnet, "kv_groups": groups, "weights": "fp32"}
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    weights = weights or ("int8" if int8 else "fp32")
    if weights != "fp32":
        from exporters.weights import WEIGHT_MODES, compress_model

        if f"{weights}-weights" not in WEIGHT_MODES:
            raise EftnasError(f"weights: {weights!r} is not one of ('fp32', 'int8', 'int4')")
        model, report = compress_model(model, WEIGHT_MODES[f"{weights}-weights"])
        info |= {"weights": weights, "weight_compression": report}
    save_with_metadata(model, xml, info)
    return xml
