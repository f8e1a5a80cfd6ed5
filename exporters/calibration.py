"""Read a labelled text file (TSV, CSV or JSON lines/list) into tokenized examples for calibration."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from eftnas_deploy.errors import EftnasError
from exporters.quantize import LabeledExamples


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a .tsv/.csv file with a header, or of a .json list / .jsonl file of objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration-file: {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".csv"):
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",", quoting=csv.QUOTE_NONE))
    if suffix in (".json", ".jsonl"):
        text = path.read_text()
        try:
            rows = json.loads(text) if suffix == ".json" else [json.loads(line) for line in text.splitlines() if line]
        except json.JSONDecodeError as exc:
            raise EftnasError(f"calibration-file: {path} is not valid JSON ({exc})") from exc
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise EftnasError(f"calibration-file: {path} must hold a list of objects")
        return rows
    raise EftnasError(f"calibration-file: {path} must be .tsv, .csv, .json or .jsonl")


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
