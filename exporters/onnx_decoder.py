"""ONNX export of a sliced decoder LLM with its KV cache as inputs/outputs (optimum, `text-generation-with-past`).

optimum's ONNX config declares one past key/value shape for every layer (`num_key_value_heads` x `head_dim`
from the config), like the OpenVINO stateful export, so the same rule holds: the same non-zero KV groups in
every built layer; MLP widths per layer and depth (a layer dropping both blocks is not built) stay elastic.
The result opens with `load_decoder_onnx` (`optimum.onnxruntime.ORTModelForCausalLM`), which runs `generate`
with the cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eftnas_deploy.supernet.decoder_slicing import check_decoder_dir
from exporters.onnx import ONNX_FILE, embed_metadata
from exporters.openvino_decoder import DECODER_TASK, check_uniform_attention


def export_decoder_onnx(sliced_dir: str | Path, out_dir: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Export a sliced decoder directory to `out_dir/model.onnx` (past key/values in, present out), FP32."""
    from optimum.exporters.onnx import main_export

    config = check_decoder_dir(sliced_dir)  # its auto_map names only the toolkit's modeling file
    groups = check_uniform_attention(config)
    out_dir = Path(out_dir)
    main_export(str(sliced_dir), output=out_dir, task=DECODER_TASK, trust_remote_code=True, do_validation=False)
    embed_metadata(out_dir / ONNX_FILE, {**(metadata or {}), "subnet": config.eftnas_subnet, "kv_groups": groups})
    return out_dir / ONNX_FILE


def load_decoder_onnx(onnx_dir: str | Path, **kwargs: Any) -> Any:
    """`ORTModelForCausalLM` of an exported sliced decoder, ready for `generate`.

    optimum sizes the empty cache of the first step with `hidden_size // num_attention_heads` for Llama/Qwen2,
    which is not the head size of a sub-network keeping fewer heads; the config's `head_dim` is.
    """
    from optimum.onnxruntime import ORTModelForCausalLM

    model = ORTModelForCausalLM.from_pretrained(onnx_dir, **kwargs)
    head_dim = getattr(model.config, "head_dim", None)
    if head_dim and hasattr(model, "embed_size_per_head"):
        model.embed_size_per_head = int(head_dim)
    return model
