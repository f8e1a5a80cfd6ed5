"""Load a task split from the hub (`datasets.load_dataset`) or from local csv/tsv/json files."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import datasets
import pandas as pd

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.data.tasks import TaskSpec

ColumnMap = Mapping[str, "str | int"]


def load_split(
    task: TaskSpec, path: str | Path | None = None, split: str | None = None, columns: ColumnMap | None = None
) -> datasets.Dataset:
    """One split with the task's canonical columns and validated labels.

    `path` None loads `split` of the hub dataset by name. Otherwise `path` is a local .tsv/.csv/.json/.jsonl
    file; `columns` maps canonical names to the file's column names, or to 0-based positions for a
    headerless file (e.g. `{"label": 0, "sentence1": 3, "sentence2": 4}`). Without a mapping a header
    row is detected, else the task's standard headerless layout (MRPC's) is used.
    """
    if path is None:
        if not task.hub_path:
            raise EftnasError(f"task: {task.name} has no hub dataset; pass a local file")
        data = datasets.load_dataset(*task.hub_path, split=split or task.train_split)
        frame = data.to_pandas()
        source = "/".join(task.hub_path)
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"data file: {path} does not exist")
        frame = _read_file(task, path, dict(columns or {}))
        source = str(path)
    if task.kind == "qa":
        return _finish_qa(task, frame, source)
    return _finish_glue(task, frame, source)


def subsample_rows(rows: datasets.Dataset, limit: int | None, seed: int) -> datasets.Dataset:
    """`limit` rows of a seeded shuffle (every row when `limit` is None or not below the row count).

    The one row subsampler of the commands and the pipeline (train and dev rows alike), so a run dir's rows
    can be rebuilt from its recorded (limit, seed).
    """
    if limit and limit < len(rows):
        return rows.shuffle(seed=seed).select(range(limit))
    return rows


def read_records(path: str | Path, what: str = "data file") -> list[dict[str, Any]]:
    """The rows of a local file with a header (.tsv/.csv) or of a .json/.jsonl file, for no particular task.

    The same reader (and checks) as `load_split`'s, for callers that name their columns themselves (the
    export command's --text-column/--label-column calibration files); errors name `what`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} does not exist")
    try:
        frame = _read_file(None, path, {})
    except EftnasError as exc:
        raise EftnasError(str(exc).replace("data file:", f"{what}:", 1)) from None
    return frame.to_dict("records")


def _read_file(task: TaskSpec | None, path: Path, columns: dict[str, str | int]) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".jsonl", ".tsv", ".csv", ".txt"):
        raise EftnasError(f"data file: {path} has an unsupported extension (use .tsv, .csv, .json or .jsonl)")
    with path.open("rb") as handle:
        if not handle.read(1 << 16).strip():
            raise EftnasError(f"data file: {path} is empty")
    try:
        if suffix in (".json", ".jsonl"):
            frame = _read_json(path)
        else:
            frame = _read_delimited(task, path, columns, "\t" if suffix != ".csv" else ",")
    except UnicodeDecodeError:
        raise EftnasError(f"data file: {path} is not UTF-8 text (a binary file?)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise EftnasError(f"data file: {path} cannot be parsed ({' '.join(str(exc).split())})") from None
    if len(frame) == 0:
        raise EftnasError(f"data file: {path} has no data rows (a header only?)")
    rename = {source: canonical for canonical, source in columns.items() if not isinstance(source, int)}
    missing = [src for src in rename if src not in frame.columns]
    if missing:
        raise EftnasError(f"columns: {missing} not found in {path} (columns: {list(frame.columns)})")
    return frame.rename(columns=rename)


def _read_delimited(task: TaskSpec | None, path: Path, columns: dict[str, str | int], sep: str) -> pd.DataFrame:
    with path.open(newline="", encoding="utf-8") as handle:
        first = handle.readline().rstrip("\r\n").split(sep)
    read = dict(sep=sep, dtype=str, keep_default_na=False, encoding="utf-8")
    if sep == "\t":
        read["quoting"] = csv.QUOTE_NONE
    positions = {k: v for k, v in columns.items() if isinstance(v, int)}
    if positions:
        if len(positions) != len(columns):
            raise EftnasError("columns: mix of names and positions; use positions only for headerless files")
        frame = pd.read_csv(path, header=None, **read)
        bad = {k: v for k, v in positions.items() if not 0 <= v < frame.shape[1]}
        if bad:
            raise EftnasError(f"columns: positions {bad} out of range for {path} ({frame.shape[1]} columns)")
        return pd.DataFrame({name: frame[pos] for name, pos in positions.items()})
    if task is None:  # no task to recognise a header by: the first row is one
        return pd.read_csv(path, header=0, **read)
    wanted = [columns.get(c, c) for c in task.required_columns]
    has_header = any(name in first for name in wanted)
    if not has_header and task.headerless_columns and len(first) == len(task.headerless_columns):
        return pd.read_csv(path, header=None, names=list(task.headerless_columns), **read)
    return pd.read_csv(path, header=0, **read)


def _read_json(path: Path) -> pd.DataFrame:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise EftnasError(f"data file: {path} is neither JSON nor JSON lines ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return pd.DataFrame(_flatten_squad(data["data"]))
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise EftnasError(f"data file: {path} must hold a list of records (or SQuAD's nested format)")
    return pd.DataFrame(data)


def _flatten_squad(articles: list[dict]) -> list[dict]:
    """The official SQuAD nested format (data/paragraphs/qas) as one row per question."""
    rows = []
    for article in articles:
        for paragraph in article.get("paragraphs", []):
            for qa in paragraph.get("qas", []):
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                rows.append(
                    {
                        "id": str(qa["id"]),
                        "title": article.get("title", ""),
                        "context": paragraph["context"],
                        "question": qa["question"],
                        "answers": {
                            "text": [a["text"] for a in answers],
                            "answer_start": [int(a["answer_start"]) for a in answers],
                        },
                    }
                )
    return rows


def _check_columns(task: TaskSpec, frame: pd.DataFrame, source: str) -> None:
    missing = [c for c in task.required_columns if c not in frame.columns]
    if missing:
        raise EftnasError(
            f"columns: {source} lacks {missing} needed by task {task.name} (has {list(frame.columns)}); "
            "pass a column mapping"
        )


def _finish_glue(task: TaskSpec, frame: pd.DataFrame, source: str) -> datasets.Dataset:
    _check_columns(task, frame, source)
    out = {c: frame[c].astype(str).tolist() for c in task.text_columns}
    out["label"] = [_label(task, value, row, source) for row, value in enumerate(frame[task.label_column])]
    return datasets.Dataset.from_dict(out)


def _label(task: TaskSpec, value: object, row: int, source: str) -> int | float:
    where = f"label: row {row} of {source}"
    if task.kind == "regression":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise EftnasError(f"{where}: {value!r} is not a number (task {task.name} is a regression)") from None
    text = str(value).strip()
    if text in task.label_names:
        return task.label_names.index(text)
    try:
        label = int(float(text))
    except ValueError:
        expected = list(task.label_names) or list(range(task.num_labels))
        raise EftnasError(f"{where}: unknown label {value!r} for task {task.name} (expected {expected})") from None
    if not 0 <= label < task.num_labels:
        raise EftnasError(f"{where}: label {label} out of range for task {task.name} (0..{task.num_labels - 1})")
    return label


def _finish_qa(task: TaskSpec, frame: pd.DataFrame, source: str) -> datasets.Dataset:
    _check_columns(task, frame, source)
    answers = []
    for row, ans in enumerate(frame["answers"]):
        if not isinstance(ans, dict) or "text" not in ans or "answer_start" not in ans:
            raise EftnasError(f"answers: row {row} of {source} must be {{'text': [...], 'answer_start': [...]}}")
        texts, starts = list(ans["text"]), [int(s) for s in ans["answer_start"]]
        if not texts and task.name == "squad":
            raise EftnasError(f"answers: row {row} of {source} has no answer (SQuAD v1.1 needs one; use squad_v2)")
        answers.append({"text": texts, "answer_start": starts})
    return datasets.Dataset.from_dict(
        {
            "id": frame["id"].astype(str).tolist(),
            "context": frame["context"].astype(str).tolist(),
            "question": frame["question"].astype(str).tolist(),
            "answers": answers,
        }
    )


def parse_columns(text: str | None) -> dict[str, str | int]:
    """'a=b,c=3' -> {'a': 'b', 'c': 3} (integers are positions in a headerless file)."""
    if not text:
        return {}
    out: dict[str, str | int] = {}
    for item in text.split(","):
        if "=" not in item:
            raise EftnasError(f"columns: {item!r} is not of the form canonical=file_column")
        key, value = (part.strip() for part in item.split("=", 1))
        out[key] = int(value) if value.isdigit() else value
    return out
