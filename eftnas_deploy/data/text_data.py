"""Minimal local text-classification data: read a TSV, tokenize into batches of tensors.

The commands and the pipeline use the full data layer (`eftnas_deploy.data`); this reader remains for
the importance tests and the search-space benchmark, whose seeded batch order they were calibrated on.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from eftnas_deploy.core.errors import EftnasError


def read_tsv_texts(
    path: str | Path, text_column: str = "sentence", label_column: str = "label", limit: int | None = None
) -> tuple[list[str], list[int]]:
    """Texts and integer labels of a headered TSV file (SST-2 style)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data: {path} does not exist")
    texts: list[str] = []
    labels: list[int] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for column in (text_column, label_column):
            if column not in (reader.fieldnames or []):
                raise EftnasError(f"{column}: column not found in {path} (columns: {reader.fieldnames})")
        for row in reader:
            try:
                labels.append(int(row[label_column]))
            except ValueError as exc:
                raise EftnasError(f"{label_column}: {row[label_column]!r} in {path} is not an integer label") from exc
            texts.append(row[text_column])
            if limit is not None and len(texts) >= limit:
                break
    if not texts:
        raise EftnasError(f"data: {path} has no rows")
    return texts, labels


def tokenized_batches(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    labels: Sequence[int],
    batch_size: int = 32,
    max_length: int = 64,
    shuffle_seed: int | None = None,
) -> list[dict[str, torch.Tensor]]:
    """Padded batches (dicts of tensors with `labels`), optionally shuffled with a fixed seed."""
    if len(texts) != len(labels):
        raise EftnasError(f"labels: {len(labels)} labels for {len(texts)} texts")
    if batch_size <= 0:
        raise EftnasError(f"batch_size: must be positive, got {batch_size}")
    order = list(range(len(texts)))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    batches = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer(
            [texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        enc["labels"] = torch.tensor([labels[i] for i in idx], dtype=torch.long)
        batches.append(dict(enc))
    return batches
