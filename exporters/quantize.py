"""INT8 post-training quantization of an OpenVINO IR with NNCF, with accuracy before and after."""

from __future__ import annotations

import shutil
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eftnas_deploy.errors import EftnasError
from exporters.openvino import IR_FILE, save_with_metadata
from latency_lut.runtime import RuntimeSpec, load_openvino

DEFAULT_SUBSET_SIZE = 300


@dataclass
class LabeledExamples:
    """Tokenized examples (each a dict of int64 arrays with batch 1) and optional labels.

    A label is a class index (classification) or a (start, end) token pair (question answering).
    """

    features: list[dict[str, np.ndarray]]
    labels: list[Hashable] | None = None

    def __post_init__(self) -> None:
        if not self.features:
            raise EftnasError("calibration: the data set is empty")
        if self.labels is not None and len(self.labels) != len(self.features):
            raise EftnasError(f"labels: {len(self.labels)} labels for {len(self.features)} examples")

    def __len__(self) -> int:
        return len(self.features)

    def take(self, start: int, stop: int | None = None) -> LabeledExamples:
        labels = None if self.labels is None else self.labels[start:stop]
        return LabeledExamples(self.features[start:stop], labels)


def predict(model: Any, features: dict[str, np.ndarray]) -> Hashable:
    """Argmax class, or the argmax (start, end) pair when the model has two outputs (QA)."""
    outputs = model(features)
    if len(outputs) == 1:
        return int(np.argmax(outputs[0][0]))
    return int(np.argmax(outputs[0][0])), int(np.argmax(outputs[1][0]))


def evaluate(model: Any, data: LabeledExamples) -> tuple[list[Hashable], float | None]:
    """Predictions of a compiled model on every example, and accuracy (exact match) when labels exist."""
    predictions = [predict(model, f) for f in data.features]
    if data.labels is None:
        return predictions, None
    return predictions, float(np.mean([p == y for p, y in zip(predictions, data.labels)]))


def _agreement(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    return float(np.mean([x == y for x, y in zip(a, b)]))


def quantize_openvino(
    ov_dir: str | Path,
    out_dir: str | Path,
    calibration: LabeledExamples,
    evaluation: LabeledExamples | None = None,
    subset_size: int = DEFAULT_SUBSET_SIZE,
    max_drop: float | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write an INT8 copy of an FP32 IR directory; return accuracy before/after on `evaluation`.

    `nncf.quantize_with_accuracy_control` is used when `max_drop` (absolute accuracy) is given;
    it needs labelled evaluation data.
    """
    import nncf
    import openvino as ov

    ov_dir, out_dir = Path(ov_dir), Path(out_dir)
    if max_drop is not None and (evaluation is None or evaluation.labels is None):
        raise EftnasError("max_drop: accuracy control needs a labelled evaluation split")
    model = ov.Core().read_model(str(ov_dir / IR_FILE))
    calibration_set = nncf.Dataset(calibration.features)
    subset = min(subset_size, len(calibration))
    if max_drop is None:
        quantized = nncf.quantize(model, calibration_set, model_type=nncf.ModelType.TRANSFORMER, subset_size=subset)
    else:
        items = list(zip(evaluation.features, evaluation.labels))

        def validate(compiled: Any, data: Any) -> float:
            correct = [predict(lambda f: list(compiled(f).values()), f) == y for f, y in data]
            return float(np.mean(correct))

        quantized = nncf.quantize_with_accuracy_control(
            model,
            calibration_set,
            nncf.Dataset(items, lambda item: item[0]),
            validation_fn=validate,
            max_drop=max_drop,
            drop_type=nncf.DropType.ABSOLUTE,
            subset_size=subset,
            model_type=nncf.ModelType.TRANSFORMER,
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in ov_dir.iterdir():
        if item.is_file() and not item.name.startswith("openvino_model."):
            shutil.copy2(item, out_dir / item.name)
    report: dict[str, Any] = {
        "method": "nncf.quantize" if max_drop is None else "nncf.quantize_with_accuracy_control",
        "nncf_version": nncf.__version__,
        "calibration_examples": subset,
        "max_drop": max_drop,
    }
    report |= _compare(ov_dir / IR_FILE, quantized, evaluation)
    save_with_metadata(quantized, out_dir / IR_FILE, (metadata or {}) | {"precision": "int8", "quantization": report})
    return report


def _compare(fp32_xml: Path, quantized: Any, evaluation: LabeledExamples | None) -> dict[str, Any]:
    """Accuracy of the FP32 IR (f32 inference precision) and of the INT8 model on the held-out split."""
    if evaluation is None:
        return {"eval_examples": 0}
    spec = RuntimeSpec("openvino", threads=1, precision="f32")
    before, acc_before = evaluate(load_openvino(fp32_xml, spec), evaluation)
    after, acc_after = evaluate(load_openvino(quantized, spec), evaluation)
    return {
        "eval_examples": len(evaluation),
        "accuracy_fp32": acc_before,
        "accuracy_int8": acc_after,
        "accuracy_drop": None if acc_before is None else acc_before - acc_after,
        "prediction_agreement": _agreement(before, after),
    }
