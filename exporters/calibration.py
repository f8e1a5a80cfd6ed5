"""Read a labelled text file (TSV, CSV or JSON lines/list) into tokenized examples for calibration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eftnas_deploy.core.errors import EftnasError
from exporters.quantize import LabeledExamples


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a .tsv/.csv file with a header, or of a .json list / .jsonl file of objects (the data layer's
    reader, `read_records`, with errors naming --calibration-file)."""
    from eftnas_deploy.data.loading import read_records

    return read_records(path, "calibration-file")


def tokenize_rows(
    rows: list[dict[str, Any]],
    tokenizer: Any,
    text_column: str,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    label_names: list[str] | None = None,
    max_length: int = 128,
) -> LabeledExamples:
    """Tokenize each row on its own (no padding); labels become class indices."""
    if not rows:
        raise EftnasError("calibration-file: no rows")
    for column in filter(None, (text_column, text_pair_column, label_column)):
        if column not in rows[0]:
            raise EftnasError(f"{column}: no such column (columns are {sorted(rows[0])})")
    features = []
    for row in rows:
        pair = row[text_pair_column] if text_pair_column else None
        enc = tokenizer(row[text_column], pair, truncation=True, max_length=max_length, return_tensors="np")
        features.append({k: np.asarray(v, dtype=np.int64) for k, v in enc.items()})
    if label_column is None:
        return LabeledExamples(features)
    raw = [str(row[label_column]).strip() for row in rows]
    names = label_names if label_names is not None else class_names(rows, label_column)
    if names is None:
        return LabeledExamples(features, [int(r) for r in raw])
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(raw) - set(index))
    if unknown:
        raise EftnasError(f"{label_column}: labels {unknown} are not in {names}")
    return LabeledExamples(features, [index[r] for r in raw])


def class_names(rows: list[dict[str, Any]], column: str) -> list[str] | None:
    """Sorted class names of a label column, or None when the labels are already integers."""
    raw = {str(row.get(column, "")).strip() for row in rows}
    return None if all(r.lstrip("-").isdigit() for r in raw) else sorted(raw)


def examples_from_split(split: Any, limit: int | None = None, start: int = 0) -> LabeledExamples:
    """A tokenized split (`eftnas_deploy.data.features.PreparedSplit`) as batch-1 examples with its labels.

    Labels: class ids (classification), floats (regression), (start, end) token pairs for QA windows
    tokenized for training; none for QA evaluation windows. The task's metric name rides along.
    """
    features = split.features
    stop = len(features) if limit is None else min(len(features), start + limit)
    rows = features.select(range(start, stop))
    names = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in rows.column_names]
    examples = [{n: np.asarray([row[n]], dtype=np.int64) for n in names} for row in rows]
    kind = split.task.kind
    labels: list[Any] | None = None
    if kind == "classification":
        labels = [int(v) for v in rows["labels"]]
    elif kind == "regression":
        labels = [float(v) for v in rows["labels"]]
    elif "start_positions" in rows.column_names:
        labels = [(int(s), int(e)) for s, e in zip(rows["start_positions"], rows["end_positions"])]
    return LabeledExamples(examples, labels, split.task.metric)


def resolve_task(name: str) -> tuple[str, Any | None]:
    """(model head, task spec) of `--task`: a head (text-classification, question-answering) or a registry task."""
    from eftnas_deploy.core.geometry import SUPPORTED_TASKS
    from eftnas_deploy.data.tasks import TASKS, get_task

    if name in SUPPORTED_TASKS:
        return name, None
    try:
        task = get_task(name)
    except EftnasError:
        raise EftnasError(
            f"task: unknown task {name!r} (expected a model head {list(SUPPORTED_TASKS)} or one of {sorted(TASKS)})"
        ) from None
    return task.model_task, task


def task_calibration(
    task: Any,
    tokenizer: Any,
    calibration_file: str | Path,
    eval_file: str | Path | None = None,
    columns: str | None = None,
    calibration_size: int = 300,
    eval_size: int = 500,
    max_length: int = 128,
) -> tuple[LabeledExamples, LabeledExamples | None]:
    """Calibration and evaluation examples read with the training data layer (`load_split`, `prepare_split`).

    Headerless files (MRPC, STS-B) and column maps (`canonical=file_column` or positions) work as in training.
    Without `eval_file`, evaluation takes the rows after the calibration rows. QA is tokenized into training
    windows, so every window carries its answer's (start, end) tokens for the span scores.
    """
    from eftnas_deploy.data.features import prepare_split
    from eftnas_deploy.data.loading import load_split, parse_columns

    if calibration_size < 1 or eval_size < 0:
        raise EftnasError(f"calibration-size: must be positive (eval-size ≥ 0), got {calibration_size}/{eval_size}")
    mapping = parse_columns(columns)
    rows = load_split(task, calibration_file, columns=mapping)
    calibration_rows = rows.select(range(min(len(rows), calibration_size)))
    if eval_file:
        held = load_split(task, eval_file, columns=mapping)
        eval_rows = held.select(range(min(len(held), eval_size)))
    else:
        start = len(calibration_rows)  # datasets refuses an empty contiguous range at the very end
        eval_rows = rows.select(range(start, min(len(rows), start + eval_size)) if start < len(rows) else [])

    def examples(data: Any) -> LabeledExamples:
        return examples_from_split(prepare_split(task, data, tokenizer, max_length, train=True))

    return examples(calibration_rows), (examples(eval_rows) if len(eval_rows) else None)
