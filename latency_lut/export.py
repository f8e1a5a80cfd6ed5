"""Export dense models to ONNX through optimum (the deployment path) and open them at a fixed shape."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transformers import PretrainedConfig, PreTrainedModel

from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.supernet import modeling_eftnas
from exporters.runtime import CompiledModel, RuntimeSpec, load_onnx, load_openvino, make_feeds

ONNX_FILE = "model.onnx"


def export_onnx(model: PreTrainedModel, out_dir: str | Path) -> Path:
    """Export `model` with optimum's ONNX exporter (dynamic batch/sequence axes); returns the .onnx path."""
    from optimum.exporters.onnx import onnx_export_from_model

    out_dir = Path(out_dir)
    task = "question-answering" if "QuestionAnswering" in type(model).__name__ else "text-classification"
    # optimum infers the library from the class's module and refuses the dense Eftnas* classes; they only
    # override __init__ (module shapes), so the stock parent class exports the very same graph.
    dense_class = type(model)
    if dense_class in modeling_eftnas.DENSE_CLASSES.values():
        model.__class__ = dense_class.__mro__[1]
    try:
        onnx_export_from_model(model, out_dir, task=task, library_name="transformers", do_validation=False)
    finally:
        model.__class__ = dense_class
    return out_dir / ONNX_FILE


def random_dense_model(config: PretrainedConfig, geometry: ModelGeometry, subnet: SubnetConfig) -> PreTrainedModel:
    """A dense (sliced-shape) model of `subnet` with random weights: latency does not depend on their values.

    `subnet` may have fewer layers than the geometry (a stack of blocks measured for the LUT).
    """
    config = copy.deepcopy(config)
    config.num_hidden_layers = subnet.num_layers
    config.eftnas_subnet = subnet.to_dict()
    config.eftnas_parent = None
    cls = modeling_eftnas.DENSE_CLASSES[(geometry.model_type, geometry.task)]
    config.architectures = [cls.__name__]
    return cls(config).eval()


def open_at_shape(
    path: Path, spec: RuntimeSpec, batch: int, seq_len: int, vocab_size: int
) -> tuple[CompiledModel, dict]:
    """Open an ONNX file for `spec` compiled for the static shape [batch, seq_len], with feeds of that shape."""
    load = load_onnx if spec.runtime == "onnxruntime" else load_openvino
    compiled = load(path, spec, static_shape=(batch, seq_len))
    return compiled, make_feeds(compiled.input_names, batch, seq_len, vocab_size=vocab_size)


@contextmanager
def exported(model: PreTrainedModel, keep_dir: Path | None = None) -> Iterator[Path]:
    """Export into `keep_dir` (reused if already exported there) or into a temporary directory."""
    if keep_dir is not None:
        path = Path(keep_dir) / ONNX_FILE
        if not path.is_file():
            export_onnx(model, keep_dir)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="eftnas-lut-") as tmp:
        yield export_onnx(model, tmp)
