"""What every pipeline stage shares: the config, the run dir, the task's splits and the finished stages' dirs."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import datasets

from eftnas_deploy.app.pipeline.config import PipelineConfig
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.data import PreparedSplit, TaskSpec, get_task, held_out_split, load_split, prepare_split
from eftnas_deploy.data.loading import parse_columns, subsample_rows

TEACHER, IMPORTANCE, SPACE, LUT, SUPERNET, SEARCH, FINETUNE, EXPORT, REPORT = (
    "01_teacher",
    "02_importance",
    "03_space",
    "04_lut",
    "05_supernet",
    "06_search",
    "07_finetune",
    "08_export",
    "09_report",
)


@dataclass
class RunContext:
    config: PipelineConfig
    run_dir: Path
    _prepared: dict[str, PreparedSplit] = field(default_factory=dict)

    def stage_dir(self, name: str) -> Path:
        """The directory of a finished stage (its outputs are read from here by later stages)."""
        path = self.run_dir / name
        if not path.is_dir():
            raise EftnasError(f"pipeline: stage {name} has not finished (no {path})")
        return path

    @cached_property
    def task(self) -> TaskSpec:
        return get_task(self.config.data.task)

    @cached_property
    def _train_and_held_out(self) -> tuple[datasets.Dataset, datasets.Dataset]:
        data = self.config.data
        rows = load_split(self.task, data.train_file, columns=parse_columns(data.columns))
        rows = subsample_rows(rows, data.max_train_rows, self.config.seed)
        return held_out_split(rows, self.run_dir, data.held_out_fraction, self.config.seed)

    @cached_property
    def dev_rows(self) -> datasets.Dataset | None:
        """The dev split (a local file, the hub's validation split, or None for local train data alone)."""
        data = self.config.data
        if data.dev_file is None and data.train_file is not None:
            return None
        rows = load_split(self.task, data.dev_file, split=self.task.eval_splits[0], columns=parse_columns(data.columns))
        return subsample_rows(rows, data.max_dev_rows, self.config.seed)

    def split(self, name: str, tokenizer: Any) -> PreparedSplit | None:
        """Tokenized "train" (minus held-out), "held_out" or "dev" (None without dev data)."""
        if name not in self._prepared:
            rows = {
                "train": lambda: self._train_and_held_out[0],
                "held_out": lambda: self._train_and_held_out[1],
                "dev": lambda: self.dev_rows,
            }[name]()
            if rows is None:
                return None
            self._prepared[name] = prepare_split(
                self.task, rows, tokenizer, self.config.data.max_length, train=name == "train"
            )
        return self._prepared[name]


def first_rows(split: PreparedSplit, limit: int | None) -> PreparedSplit:
    """The first `limit` rows of a classification/regression split (all of it for None or QA)."""
    if limit is None or split.task.kind == "qa" or limit >= len(split.features):
        return split
    return PreparedSplit(split.task, split.features.select(range(limit)), split.examples)


def labeled_examples(split: PreparedSplit, limit: int | None):
    """The first `limit` features of a split as batch-1 int64 arrays, with the task's labels and metric."""
    from exporters.calibration import examples_from_split

    return examples_from_split(first_rows(split, limit))
