"""INT8 post-training quantization of an OpenVINO IR with NNCF, with the task's score before and after.

Scores by head: classification, the task metric (accuracy, accuracy_f1, matthews) on argmax classes;
regression (one output of width 1), Pearson/Spearman on the predicted values; question answering (start and
end logits), exact match and token-overlap F1 of the predicted span against the labelled (start, end) tokens
of each window (SQuAD's F1 over tokens instead of words; text answers are not decoded here).
"""

from __future__ import annotations

import shutil
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eftnas_deploy.core.errors import EftnasError
from exporters.openvino import IR_FILE, save_with_metadata
from exporters.runtime import RuntimeSpec, load_openvino

DEFAULT_SUBSET_SIZE = 300


@dataclass
class LabeledExamples:
    """Tokenized examples (each a dict of int64 arrays with batch 1) and optional labels.

    A label is a class index (classification), a float (regression) or a (start, end) token pair (question
    answering). `metric` is the task's metric name (`eftnas_deploy.data.tasks`); None: accuracy for classes,
    pearson_spearman for regression.
    """

    features: list[dict[str, np.ndarray]]
    labels: list[Hashable] | None = None
    metric: str | None = None

    def __post_init__(self) -> None:
        if not self.features:
            raise EftnasError("calibration: the data set is empty")
        if self.labels is not None and len(self.labels) != len(self.features):
            raise EftnasError(f"labels: {len(self.labels)} labels for {len(self.features)} examples")

    def __len__(self) -> int:
        return len(self.features)

    def take(self, start: int, stop: int | None = None) -> LabeledExamples:
        labels = None if self.labels is None else self.labels[start:stop]
        return LabeledExamples(self.features[start:stop], labels, self.metric)

    def select_inputs(self, names: Iterable[str]) -> LabeledExamples:
        """The examples fed only the inputs a model declares (a DistilBERT graph takes no token_type_ids)."""
        names = set(names)
        missing = names - set(self.features[0])
        if missing:
            raise EftnasError(f"inputs: the model takes {sorted(missing)}, which the examples lack")
        features = [{k: v for k, v in f.items() if k in names} for f in self.features]
        return LabeledExamples(features, self.labels, self.metric)


def predict(model: Any, features: dict[str, np.ndarray]) -> Hashable:
    """Argmax class; the value of a one-output regression head; the argmax (start, end) pair of a QA head."""
    outputs = model(features)
    if len(outputs) == 1:
        logits = np.asarray(outputs[0][0]).reshape(-1)
        return float(logits[0]) if logits.size == 1 else int(np.argmax(logits))
    return int(np.argmax(outputs[0][0])), int(np.argmax(outputs[1][0]))


def head_kind(predictions: Sequence[Hashable]) -> str:
    """classification, regression or qa, from what `predict` returned."""
    first = predictions[0]
    return "qa" if isinstance(first, tuple) else "regression" if isinstance(first, float) else "classification"


def span_scores(predictions: Sequence[tuple[int, int]], labels: Sequence[Hashable]) -> dict[str, float]:
    """Exact match and token-overlap F1 of predicted (start, end) spans (an end before its start: empty span)."""
    exact, f1 = [], []
    for (ps, pe), (gs, ge) in zip(predictions, (tuple(y) for y in labels)):
        exact.append(float((ps, pe) == (gs, ge)))
        overlap = max(0, min(pe, ge) - max(ps, gs) + 1)
        size_p, size_g = max(0, pe - ps + 1), max(0, ge - gs + 1)
        f1.append(0.0 if overlap == 0 else 2 * overlap / (size_p + size_g))
    return {"span_f1": float(np.mean(f1)), "span_exact_match": float(np.mean(exact))}


def score(predictions: Sequence[Hashable], labels: Sequence[Hashable], metric: str | None = None) -> dict[str, float]:
    """The task's scores of `predictions`; the first key is the headline (the one accuracy control keeps)."""
    from eftnas_deploy.metrics.task_metrics import classification_metrics

    kind = head_kind(predictions)
    if kind == "qa":
        return span_scores(predictions, labels)  # type: ignore[arg-type]
    if kind == "regression":
        return classification_metrics("pearson_spearman", np.asarray(predictions), np.asarray(labels, dtype=float))
    metric = metric if metric in ("accuracy", "accuracy_f1", "matthews") else "accuracy"
    return classification_metrics(metric, np.asarray(predictions), np.asarray(labels))


def evaluate(model: Any, data: LabeledExamples) -> tuple[list[Hashable], dict[str, float] | None]:
    """Predictions of a compiled model on every example, and the task's scores when labels exist."""
    predictions = [predict(model, f) for f in data.features]
    if data.labels is None:
        return predictions, None
    return predictions, score(predictions, data.labels, data.metric)


def agreement(a: Sequence[Hashable], b: Sequence[Hashable]) -> dict[str, float]:
    """How close INT8 predictions are to FP32 ones: equal classes/spans, or the gap between regression values."""
    if head_kind(a) != "regression":
        return {"prediction_agreement": float(np.mean([x == y for x, y in zip(a, b)]))}
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    pearson = float(np.corrcoef(x, y)[0, 1]) if len(x) > 1 and np.ptp(x) > 0 and np.ptp(y) > 0 else None
    return {"prediction_mean_abs_diff": float(np.mean(np.abs(x - y))), "prediction_pearson": pearson}


def quantize_openvino(
    ov_dir: str | Path,
    out_dir: str | Path,
    calibration: LabeledExamples,
    evaluation: LabeledExamples | None = None,
    subset_size: int = DEFAULT_SUBSET_SIZE,
    max_drop: float | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write an INT8 copy of an FP32 IR directory; return the task's score before/after on `evaluation`.

    `nncf.quantize_with_accuracy_control` is used when `max_drop` (absolute drop of the headline score) is
    given; it needs labelled evaluation data.
    """
    import nncf
    import openvino as ov

    ov_dir, out_dir = Path(ov_dir), Path(out_dir)
    if max_drop is not None and (evaluation is None or evaluation.labels is None):
        raise EftnasError("max_drop: accuracy control needs a labelled evaluation split")
    model = ov.Core().read_model(str(ov_dir / IR_FILE))
    inputs = [port.get_any_name() for port in model.inputs]
    calibration = calibration.select_inputs(inputs)
    evaluation = evaluation.select_inputs(inputs) if evaluation is not None else None
    calibration_set = nncf.Dataset(calibration.features)
    subset = min(subset_size, len(calibration))
    if max_drop is None:
        quantized = nncf.quantize(model, calibration_set, model_type=nncf.ModelType.TRANSFORMER, subset_size=subset)
    else:
        items = list(zip(evaluation.features, evaluation.labels))

        def validate(compiled: Any, data: Any) -> float:
            items = list(data)
            predictions = [predict(lambda f: list(compiled(f).values()), f) for f, _ in items]
            return next(iter(score(predictions, [y for _, y in items], evaluation.metric).values()))

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
    report |= compare_scores(ov_dir / IR_FILE, quantized, evaluation)
    save_with_metadata(quantized, out_dir / IR_FILE, (metadata or {}) | {"precision": "int8", "quantization": report})
    return report


def compare_scores(
    fp32_xml: Path, changed: Any, evaluation: LabeledExamples | None, name: str = "int8"
) -> dict[str, Any]:
    """Scores of the FP32 IR (f32 inference precision) and of its `name` copy (INT8, weight-compressed) on the
    held-out split.

    `score_*` hold the headline score (named by `metric`) and `scores_*` every score; `accuracy_*` repeat the
    headline under the keys reports read (for regression and QA they are that score, not an accuracy).
    """
    if evaluation is None:
        return {"eval_examples": 0}
    spec = RuntimeSpec("openvino", threads=1, precision="f32")
    before, scores_before = evaluate(load_openvino(fp32_xml, spec), evaluation)
    after, scores_after = evaluate(load_openvino(changed, spec), evaluation)
    out: dict[str, Any] = {"eval_examples": len(evaluation), "head": head_kind(before)}
    if scores_before is None or scores_after is None:
        out |= {"metric": None, "accuracy_fp32": None, f"accuracy_{name}": None, "accuracy_drop": None}
        return out | agreement(before, after)
    metric = next(iter(scores_before))
    fp32, other = scores_before[metric], scores_after[metric]
    out |= {
        "metric": metric,
        "score_fp32": fp32,
        f"score_{name}": other,
        "score_drop": fp32 - other,
        "scores_fp32": scores_before,
        f"scores_{name}": scores_after,
        "accuracy_fp32": fp32,
        f"accuracy_{name}": other,
        "accuracy_drop": fp32 - other,
    }
    return out | agreement(before, after)
