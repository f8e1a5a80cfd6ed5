"""Trainer wiring shared by the teacher and super-network stages: arguments, datasets, collators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    DataCollatorWithPadding,
    PreTrainedTokenizerBase,
    ProgressCallback,
    Trainer,
    TrainingArguments,
    default_data_collator,
)

from eftnas_deploy.data.features import PreparedSplit

DEFAULTS: dict[str, Any] = dict(
    per_device_train_batch_size=32,
    learning_rate=5e-5,
    num_train_epochs=1,
    logging_steps=50,
    save_strategy="no",
    report_to="none",
    dataloader_num_workers=0,
    disable_tqdm=False,
    seed=0,
)


def training_arguments(out_dir: str | Path, **overrides: Any) -> TrainingArguments:
    """TrainingArguments with quiet, CPU-friendly defaults (CPU unless a GPU is present; no hub, no W&B)."""
    values = {**DEFAULTS, **overrides}
    values.setdefault("use_cpu", not torch.cuda.is_available())
    return TrainingArguments(output_dir=str(out_dir), **values)


class LabelledProgressCallback(ProgressCallback):
    """The Trainer's progress bar, labelled with what trains (a bare "37%|███" says nothing in a long log)."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        if self.training_bar is not None:
            self.training_bar.set_description(self.label)


def label_progress(trainer: Trainer, label: str) -> Trainer:
    """Swap `trainer`'s progress bar for one labelled `label` (nothing to do when its bar is disabled)."""
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(LabelledProgressCallback(label))
    return trainer


def collator_for(split: PreparedSplit, tokenizer: PreTrainedTokenizerBase):
    """Dynamic padding for classification; QA windows are already padded to max_length."""
    if split.task.kind == "qa":
        return default_data_collator
    return DataCollatorWithPadding(tokenizer)


def training_batches(
    split: PreparedSplit,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 32,
    seed: int = 0,
    group_by_length: bool = False,
):
    """A seeded, shuffled DataLoader of padded training batches (dicts of tensors with labels).

    `group_by_length` puts rows of similar length together (HF's LengthGroupedSampler, the Trainer's option of
    the same name): with dynamic padding a random SST-2 batch pads 13-token rows to ~50, several times the
    compute. It is off by default because the batches then follow length, and where length goes with the label
    (the demo's task) training suffers.
    """
    from torch.utils.data import DataLoader
    from transformers.trainer_pt_utils import LengthGroupedSampler

    generator = torch.Generator().manual_seed(seed)
    features = split.features.with_format("torch")
    collate = collator_for(split, tokenizer)
    if not group_by_length:
        return DataLoader(features, batch_size=batch_size, shuffle=True, collate_fn=collate, generator=generator)
    lengths = [len(ids) for ids in split.features["input_ids"]]
    sampler = LengthGroupedSampler(batch_size, lengths=lengths, generator=generator)
    return DataLoader(features, batch_size=batch_size, sampler=sampler, collate_fn=collate)
