"""Teacher: fine-tune a model on the task (or build one from a config and train it from scratch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer

from eftnas_deploy.data.features import PreparedSplit
from eftnas_deploy.data.tasks import TaskSpec
from eftnas_deploy.families.models import build_model
from eftnas_deploy.supernet.loading import load_model
from eftnas_deploy.training.setup import collator_for, label_progress, training_arguments


def teacher_from_config(
    task: TaskSpec, tokenizer: PreTrainedTokenizerBase, model_type: str = "bert", **config: Any
) -> PreTrainedModel:
    """A randomly initialised model sized for `tokenizer` (for offline use, trained from scratch)."""
    config.setdefault("vocab_size", len(tokenizer))
    config.setdefault("pad_token_id", tokenizer.pad_token_id or 0)
    return build_model(model_type, task.model_task, num_labels=task.model_num_labels, **task.label_config(), **config)


def load_teacher(name_or_path: str, task: TaskSpec) -> PreTrainedModel:
    """A pretrained (or already fine-tuned) model for `task`."""
    kwargs = {"num_labels": task.model_num_labels, **task.label_config()} if task.kind != "qa" else {}
    return load_model(name_or_path, task.model_task, **kwargs)


def train_teacher(
    model: PreTrainedModel,
    train: PreparedSplit,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | Path,
    resume_from_checkpoint: str | None = None,
    **training_overrides: Any,
) -> PreTrainedModel:
    """Fine-tune `model` on `train` with HF Trainer; returns the trained model (not saved).

    `resume_from_checkpoint` continues an interrupted run from one of its checkpoints in `out_dir`.
    """
    trainer = Trainer(
        model=model,
        args=training_arguments(out_dir, **training_overrides),
        train_dataset=train.features,
        data_collator=collator_for(train, tokenizer),
        processing_class=tokenizer,
    )
    label_progress(trainer, "teacher fine-tune")
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return model.eval()
