"""Registry from (model type, task) to HF classes, plus model building and loading."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    RobertaConfig,
    RobertaForQuestionAnswering,
    RobertaForSequenceClassification,
)

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.geometry import SUPPORTED_TASKS

MODEL_CLASSES: dict[tuple[str, str], type[PreTrainedModel]] = {
    ("bert", "text-classification"): BertForSequenceClassification,
    ("bert", "question-answering"): BertForQuestionAnswering,
    ("roberta", "text-classification"): RobertaForSequenceClassification,
    ("roberta", "question-answering"): RobertaForQuestionAnswering,
}
CONFIG_CLASSES = {"bert": BertConfig, "roberta": RobertaConfig}
AUTO_CLASSES = {
    "text-classification": AutoModelForSequenceClassification,
    "question-answering": AutoModelForQuestionAnswering,
}


def _check_task(task: str) -> None:
    if task not in SUPPORTED_TASKS:
        raise EftnasError(f"task: {task!r} is not supported (expected one of {SUPPORTED_TASKS})")


def task_of(model: PreTrainedModel) -> str:
    """The task a supported model instance solves."""
    for (_, task), cls in MODEL_CLASSES.items():
        if isinstance(model, cls):
            return task
    raise EftnasError(
        f"model: {type(model).__name__} is not supported; use one of "
        f"{sorted(c.__name__ for c in MODEL_CLASSES.values())}"
    )


def build_model(model_type: str = "bert", task: str = "text-classification", **config_kwargs: Any) -> PreTrainedModel:
    """A randomly initialised model built from a config (for offline use and tests)."""
    _check_task(task)
    if model_type not in CONFIG_CLASSES:
        raise EftnasError(f"model_type: {model_type!r} is not supported (expected one of {sorted(CONFIG_CLASSES)})")
    config = CONFIG_CLASSES[model_type](**config_kwargs)
    return MODEL_CLASSES[(model_type, task)](config)


def load_model(
    name_or_path: str,
    task: str = "text-classification",
    *,
    what: str = "model",
    strict_task: bool = False,
    **kwargs: Any,
) -> PreTrainedModel:
    """Load a pretrained BERT/RoBERTa model (hub name or local directory) for a task.

    Errors name `what` (the flag or config field the path came from). `strict_task` refuses a model whose
    trained head is for another task instead of attaching a new, random head.
    """
    from eftnas_deploy.families.sources import check_task_head, load_error, model_config

    _check_task(task)
    config = model_config(name_or_path, what, **{k: v for k, v in kwargs.items() if k == "num_labels"})
    if config.model_type not in CONFIG_CLASSES:
        raise EftnasError(f"model_type: {config.model_type!r} is not supported (expected bert or roberta)")
    if strict_task:
        check_task_head(config, task, name_or_path)
    try:
        if getattr(config, "eftnas_subnet", None):
            from eftnas_deploy.supernet.slicing import load_sliced

            return load_sliced(name_or_path)
        return AUTO_CLASSES[task].from_pretrained(name_or_path, **kwargs)
    except EftnasError:
        raise
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        raise load_error(exc, name_or_path, what) from None
    except Exception as exc:  # safetensors' SafetensorError derives from Exception only
        if type(exc).__name__ != "SafetensorError":
            raise
        raise load_error(exc, name_or_path, what) from None


def encoder_layers(model: PreTrainedModel) -> Sequence[nn.Module]:
    """The encoder's layer list of a BERT/RoBERTa model."""
    return model.base_model.encoder.layer


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json")


def load_tokenizer_if_present(directory: str | Path) -> PreTrainedTokenizerBase | None:
    """The tokenizer saved in a model directory, or None if it has none."""
    if not any((Path(directory) / name).is_file() for name in TOKENIZER_FILES):
        return None
    return AutoTokenizer.from_pretrained(directory)
