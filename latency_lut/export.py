"""Export dense models to ONNX with the deployment exporter and open them at a fixed shape.

The LUT times exactly what a bundle ships: a sliced directory written by `save_sliced` and exported by
`exporters.onnx.export_onnx` (optimum's `main_export`, loading the toolkit's own modeling file).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transformers import PretrainedConfig, PreTrainedModel

from eftnas_deploy.core.family import get_family
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.supernet.slicing import DENSE_CLASSES, own_auto_map, save_sliced, task_of_dense
from exporters import onnx as onnx_export
from exporters.runtime import CompiledModel, RuntimeSpec, load_onnx, load_openvino, make_feeds

ONNX_FILE = onnx_export.ONNX_FILE


def export_onnx(model: PreTrainedModel, out_dir: str | Path) -> Path:
    """Save a dense sliced model and export it as a bundle does (dynamic batch/sequence axes); the .onnx path."""
    with tempfile.TemporaryDirectory(prefix="eftnas-lut-sliced-") as tmp:
        sliced = save_sliced(model, Path(tmp) / "pytorch")
        return onnx_export.export_onnx(sliced, out_dir, task_of_dense(model))


def random_dense_model(config: PretrainedConfig, geometry: ModelGeometry, subnet: SubnetConfig) -> PreTrainedModel:
    """A dense (sliced-shape) model of `subnet` with random weights: latency does not depend on their values.

    `subnet` may have fewer layers than the geometry (a stack of blocks measured for the LUT).
    """
    family = get_family(geometry.model_type)
    config = copy.deepcopy(config)
    setattr(config, family.config_fields["num_layers"], subnet.num_layers)
    config.eftnas_subnet = subnet.to_dict()
    config.eftnas_parent = None
    config.eftnas_layout = family.dense_layout(geometry.head_dim)
    cls = DENSE_CLASSES[(geometry.model_type, geometry.task)]
    config.architectures = [cls.__name__]
    config.auto_map = own_auto_map(cls, geometry.task)
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
