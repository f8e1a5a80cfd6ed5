"""A deployment bundle: the sliced model as PyTorch, ONNX, OpenVINO IR and INT8 IR, written atomically."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedModel

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.io import atomic_output_dir, check_output_dir, read_json, write_json
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.families.models import family_of
from eftnas_deploy.supernet.elastic import SuperNetwork
from eftnas_deploy.supernet.slicing import load_sliced, save_sliced, slice_subnet
from exporters import onnx as onnx_export
from exporters import openvino as ov_export
from exporters.parity import ONNX_ATOL, OPENVINO_ATOL, check_parity, padded_inputs
from exporters.provenance import METADATA_FILE, artifact_metadata, fingerprint_state_dict
from exporters.quantize import DEFAULT_SUBSET_SIZE, LabeledExamples, quantize_openvino
from exporters.runtime import RuntimeSpec
from exporters.weights import WEIGHT_MODES, compress_weights_openvino

FORMAT_DIRS = {
    "pytorch": "pytorch",
    "onnx": "onnx",
    "openvino": "openvino",
    "int8": "openvino-int8",
    "int8-weights": "openvino-int8-weights",
    "int4-weights": "openvino-int4-weights",
}
MANIFEST = "bundle.json"
PACKAGES = (
    "torch",
    "transformers",
    "optimum",
    "optimum-onnx",
    "optimum-intel",
    "onnx",
    "onnxruntime",
    "openvino",
    "nncf",
)


@dataclass
class ExportSource:
    """A dense sliced model, its tokenizer and the fingerprint of the super-network it came from."""

    dense: PreTrainedModel
    tokenizer: Any | None
    source_fingerprint: str | None

    @classmethod
    def from_supernet(cls, supernet: SuperNetwork, subnet: SubnetConfig, tokenizer: Any | None = None) -> ExportSource:
        fingerprint = fingerprint_state_dict(supernet.model.state_dict())
        return cls(slice_subnet(supernet, subnet), tokenizer, fingerprint)

    @classmethod
    def from_sliced(cls, directory: str | Path) -> ExportSource:
        """A sliced HF directory (e.g. a bundle's pytorch/); provenance is read from its eftnas.json."""
        directory = Path(directory)
        dense = load_sliced(directory).eval()
        tokenizer = (
            AutoTokenizer.from_pretrained(directory) if (directory / "tokenizer_config.json").is_file() else None
        )
        meta = directory / METADATA_FILE
        fingerprint = read_json(meta, "metadata").get("source_fingerprint") if meta.is_file() else None
        return cls(dense, tokenizer, fingerprint)


def apply_task_labels(dense: PreTrainedModel, task: Any | None) -> None:
    """Name the classes of a classification model after its task (`TaskSpec`): id2label/label2id."""
    if task is None or task.id2label is None or "QuestionAnswering" in type(dense).__name__:
        return
    if dense.config.num_labels != task.model_num_labels:
        raise EftnasError(
            f"task: {task.name} has {task.model_num_labels} labels, the model's head has {dense.config.num_labels}"
        )
    dense.config.update(task.label_config())


@contextmanager
def tokenizer_fitted_to(tokenizer: Any | None, limit: int) -> Iterator[dict[str, Any]]:
    """While saving: the tokenizer's `model_max_length` capped at the model's positions (restored afterwards).

    Yields what the bundle records: the tokenizer's length before and after.
    """
    if tokenizer is None:
        yield {"tokenizer_max_length": None}
        return
    before = tokenizer.model_max_length
    tokenizer.model_max_length = min(int(before), limit) if before else limit
    unset = not before or before >= 10**20  # transformers' VERY_LARGE_INTEGER: the tokenizer set no length
    try:
        source = None if unset else before
        yield {"tokenizer_max_length": tokenizer.model_max_length, "tokenizer_max_length_source": source}
    finally:
        tokenizer.model_max_length = before


@dataclass
class _Job:
    """What the format writers of one export share: the model, its metadata, the output dirs, the manifest."""

    source: ExportSource
    dense: PreTrainedModel
    task: str
    meta: dict[str, Any]
    manifest: dict[str, Any]
    dirs: dict[str, Path]
    parity_targets: dict[str, tuple[Path, RuntimeSpec, float]]
    calibration: LabeledExamples | None
    evaluation: LabeledExamples | None
    subset_size: int
    max_drop: float | None
    ort_optimize: bool


@dataclass(frozen=True)
class Format:
    """An export format: its writer, and the format it is built from (written first, dropped if not asked for)."""

    write: Callable[[_Job], None]
    built_from: str | None = None


def _write_pytorch(job: _Job) -> None:
    # The other formats copy the tokenizer (and its max length) from here.
    with tokenizer_fitted_to(job.source.tokenizer, job.meta["max_seq_len"]) as fitted:
        save_sliced(job.dense, job.dirs["pytorch"], tokenizer=job.source.tokenizer, extra_files=_meta_file(job.meta))
    job.manifest |= fitted
    job.manifest["formats"]["pytorch"] = {"dir": "pytorch", "file": "model.safetensors"}


def _write_onnx(job: _Job) -> None:
    path = onnx_export.export_onnx(job.dirs["pytorch"], job.dirs["onnx"], job.task, job.meta)
    _write_meta(job.dirs["onnx"], job.meta)
    job.manifest["formats"]["onnx"] = {"dir": "onnx", "file": path.name}
    job.parity_targets["onnx"] = (path, RuntimeSpec("onnxruntime", 1, "fp32"), ONNX_ATOL)
    if job.ort_optimize:
        family = family_of(job.dense)
        feeds = padded_inputs(job.dense.config.vocab_size, input_names=family.input_names)
        opt = onnx_export.optimize_onnx(
            path, job.dirs["onnx"] / onnx_export.OPTIMIZED_FILE, feeds, model_type=family.ort_optimizer_type
        )
        job.manifest["ort_optimization"] = opt
        if opt["kept"]:
            target = (job.dirs["onnx"] / opt["file"], RuntimeSpec("onnxruntime", 1, "fp32"), ONNX_ATOL)
            job.parity_targets["onnx-optimized"] = target


def _write_openvino(job: _Job) -> None:
    path = ov_export.export_openvino(job.dirs["pytorch"], job.dirs["openvino"], job.task, job.meta)
    _write_meta(job.dirs["openvino"], job.meta)
    job.manifest["formats"]["openvino"] = {"dir": "openvino", "file": path.name}
    job.parity_targets["openvino"] = (path, RuntimeSpec("openvino", 1, "f32"), OPENVINO_ATOL)


def _write_int8(job: _Job) -> None:
    report = quantize_openvino(
        job.dirs["openvino"], job.dirs["int8"], job.calibration, job.evaluation, job.subset_size, job.max_drop,
        job.meta,
    )  # fmt: skip
    _write_meta(job.dirs["int8"], job.meta | {"precision": "int8", "quantization": report})
    job.manifest["formats"]["int8"] = {"dir": FORMAT_DIRS["int8"], "file": ov_export.IR_FILE}
    job.manifest["quantization"] = report


def _weight_writer(name: str) -> Callable[[_Job], None]:
    def write(job: _Job) -> None:
        report = compress_weights_openvino(
            job.dirs["openvino"], job.dirs[name], WEIGHT_MODES[name], job.evaluation, job.meta
        )
        _write_meta(job.dirs[name], job.meta | {"precision": name, "weight_compression": report})
        job.manifest["formats"][name] = {"dir": FORMAT_DIRS[name], "file": ov_export.IR_FILE}
        job.manifest.setdefault("weight_compression", {})[name] = report

    return write


# name -> format, registered once in the order they are written; `parse_formats` and the config check use its keys.
FORMATS: dict[str, Format] = {
    "pytorch": Format(_write_pytorch),
    "onnx": Format(_write_onnx, built_from="pytorch"),
    "openvino": Format(_write_openvino, built_from="pytorch"),
    "int8": Format(_write_int8, built_from="openvino"),
    **{name: Format(_weight_writer(name), built_from="openvino") for name in WEIGHT_MODES},
}


def parse_formats(formats: str | list[str] | tuple[str, ...]) -> list[str]:
    """Validate a format list ("pytorch,onnx" or a sequence), keeping FORMATS order."""
    names = [f.strip() for f in formats.split(",")] if isinstance(formats, str) else list(formats)
    unknown = [f for f in names if f not in FORMATS]
    if unknown or not names:
        raise EftnasError(f"formats: unknown format(s) {unknown or names} (expected a subset of {list(FORMATS)})")
    return [f for f in FORMATS if f in names]


def _with_prerequisites(formats: list[str]) -> list[str]:
    """`formats` plus every format they are built from, in registry order (pytorch always: parity needs it)."""
    needed = {"pytorch", *formats}
    for name in reversed(FORMATS):
        if name in needed and FORMATS[name].built_from:
            needed.add(FORMATS[name].built_from)
    return [name for name in FORMATS if name in needed]


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def export_bundle(
    source: ExportSource,
    out: str | Path,
    formats: str | list[str] = ("pytorch", "onnx", "openvino"),
    calibration: LabeledExamples | None = None,
    evaluation: LabeledExamples | None = None,
    subset_size: int = DEFAULT_SUBSET_SIZE,
    max_drop: float | None = None,
    ort_optimize: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the requested formats plus bundle.json under `out`; on any failure nothing is left there.

    Every artifact is checked against PyTorch on padded random inputs (ONNX ≤1e-4, OpenVINO f32 ≤1e-3).
    """
    formats = parse_formats(formats)
    if "int8" in formats and calibration is None:
        raise EftnasError("calibration: the int8 format needs a calibration data set (--calibration-file)")
    check_output_dir(out, overwrite)
    dense = source.dense.eval()
    task = dense.config.eftnas_parent["task"]
    meta = artifact_metadata(dense, source.source_fingerprint)
    steps = _with_prerequisites(formats)
    manifest: dict[str, Any] = {"format_version": 1, **meta, "formats": {}, "versions": versions()}
    if dense.config.id2label and "QuestionAnswering" not in type(dense).__name__:
        manifest["id2label"] = {str(k): v for k, v in dense.config.id2label.items()}
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        job = _Job(
            source, dense, task, meta, manifest, {name: tmp / FORMAT_DIRS[name] for name in FORMATS}, {},
            calibration, evaluation, subset_size, max_drop, ort_optimize,
        )  # fmt: skip
        for step in tqdm(steps, desc="export", unit="format"):
            FORMATS[step].write(job)
        manifest, dirs, parity_targets = job.manifest, job.dirs, job.parity_targets
        manifest["parity"] = check_parity(dense, parity_targets)
        for name in set(steps) - set(formats):  # intermediates the requested formats were built from
            shutil.rmtree(dirs[name])
            del manifest["formats"][name]
        write_json(tmp / MANIFEST, manifest)
    return manifest


def _meta_file(meta: dict[str, Any]) -> dict[str, str]:
    import json

    return {METADATA_FILE: json.dumps(meta, indent=2) + "\n"}


def _write_meta(directory: Path, meta: dict[str, Any]) -> None:
    write_json(directory / METADATA_FILE, meta)


def read_manifest(bundle: str | Path) -> dict[str, Any]:
    """bundle.json of a bundle directory."""
    manifest = read_json(Path(bundle) / MANIFEST, "bundle")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("formats"), dict):
        raise EftnasError(f"bundle: {bundle}/{MANIFEST} is not an eftnas-deploy bundle manifest")
    for name, entry in manifest["formats"].items():
        if not isinstance(entry, dict):
            raise EftnasError(f"formats.{name}: {bundle}/{MANIFEST} has no object for this format")
    return manifest
