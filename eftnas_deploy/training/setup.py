"""Trainer wiring shared by the teacher and super-network stages: arguments, datasets, collators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase, TrainingArguments, default_data_collator

from eftnas_deploy.data.features import PreparedSplit

DEFAULTS: dict[str, Any] = dict(
    per_device_train_batch_size=32,
    learning_rate=5e-5,
    num_train_epochs=1,
    logging_steps=50,
    save_strategy="no",
    report_to="none",
    dataloader_num_workers=0,
    # Batches of similar lengths: with dynamic padding, a random batch of SST-2 pads 13-token sentences to ~40.
    group_by_length=True,
    disable_tqdm=False,
    seed=0,
)


def training_arguments(out_dir: str | Path, **overrides: Any) -> TrainingArguments:
    """TrainingArguments with quiet, CPU-friendly defaults (CPU unless a GPU is present; no hub, no W&B)."""
    values = {**DEFAULTS, **overrides}
    values.setdefault("use_cpu", not torch.cuda.is_available())
    return TrainingArguments(output_dir=str(out_dir), **values)


def collator_for(split: PreparedSplit, tokenizer: PreTrainedTokenizerBase):
    """Dynamic padding for classification; QA windows are already padded to max_length."""
    if split.task.kind == "qa":
        return default_data_collator
    return DataCollatorWithPadding(tokenizer)


def training_batches(split: PreparedSplit, tokenizer: PreTrainedTokenizerBase, batch_size: int = 32, seed: int = 0):
    """A seeded DataLoader of padded training batches (dicts of tensors with labels), grouped by length.

    Batches hold rows of similar length in a random order (HF's LengthGroupedSampler, as `group_by_length`
    in the Trainer): with dynamic padding a random SST-2 batch pads 13-token rows to ~50, 4x the compute.
    """
    from torch.utils.data import DataLoader
    from transformers.trainer_pt_utils import LengthGroupedSampler

    generator = torch.Generator().manual_seed(seed)
    features = split.features.with_format("torch")
    lengths = [len(ids) for ids in split.features["input_ids"]]
    sampler = LengthGroupedSampler(batch_size, lengths=lengths, generator=generator)
    return DataLoader(features, batch_size=batch_size, sampler=sampler, collate_fn=collator_for(split, tokenizer))
