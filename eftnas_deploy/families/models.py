"""The torch side of the family registry: HF classes per (model type, task), building, loading, layer lists.

Family files are pure data naming transformers classes; this module resolves the names. Loading sliced
directories lives above, in `eftnas_deploy.supernet.loading.load_model`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import transformers
from torch import nn
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.family import FamilySpec, family_names, get_family
from eftnas_deploy.core.geometry import SUPPORTED_TASKS

AUTO_CLASSES = {
    "text-classification": AutoModelForSequenceClassification,
    "question-answering": AutoModelForQuestionAnswering,
}


def check_task(task: str) -> None:
    if task not in SUPPORTED_TASKS:
        raise EftnasError(f"task: {task!r} is not supported (expected one of {SUPPORTED_TASKS})")


@cache
def hf_class(name: str) -> type:
    """A transformers class by name."""
    return getattr(transformers, name)


def model_class(model_type: str, task: str) -> type[PreTrainedModel]:
    check_task(task)
    return hf_class(get_family(model_type).model_classes[task])


def config_class(model_type: str) -> type[PretrainedConfig]:
    return hf_class(get_family(model_type).config_class)


# The registry as {key: HF class} tables (families register at package import, before this module runs).
MODEL_CLASSES: dict[tuple[str, str], type[PreTrainedModel]] = {
    (m, t): model_class(m, t) for m in family_names() for t in get_family(m).model_classes
}
CONFIG_CLASSES: dict[str, type[PretrainedConfig]] = {m: config_class(m) for m in family_names()}


def family_of(model: PreTrainedModel | PretrainedConfig) -> FamilySpec:
    """The family spec of a model (or config)."""
    config = model if isinstance(model, PretrainedConfig) else model.config
    return get_family(config.model_type)


def task_of(model: PreTrainedModel) -> str:
    """The task a supported model instance solves."""
    for (_, task), cls in MODEL_CLASSES.items():
        if isinstance(model, cls):
            return task
    raise EftnasError(
        f"model: {type(model).__name__} is not supported; use one of "
        f"{sorted(c.__name__ for c in MODEL_CLASSES.values())}"
    )


def make_config(model_type: str = "bert", **config_kwargs: Any) -> PretrainedConfig:
    """A config of a family; geometry fields may use normalized or BERT-style names (see FamilySpec.config_kwargs)."""
    family = get_family(model_type)
    return config_class(model_type)(**family.config_kwargs(**config_kwargs))


def build_model(model_type: str = "bert", task: str = "text-classification", **config_kwargs: Any) -> PreTrainedModel:
    """A randomly initialised model built from a config (for offline use and tests)."""
    check_task(task)
    return model_class(model_type, task)(make_config(model_type, **config_kwargs))


def load_pretrained(
    name_or_path: str,
    task: str = "text-classification",
    *,
    what: str = "model",
    strict_task: bool = False,
    **kwargs: Any,
) -> PreTrainedModel:
    """Load a pretrained model of a registered family (hub name or local directory) for a task.

    Errors name `what` (the flag or config field the path came from). `strict_task` refuses a model whose
    trained head is for another task instead of attaching a new, random head. Sliced sub-networks are
    refused here; `eftnas_deploy.supernet.loading.load_model` loads both.
    """
    from eftnas_deploy.families.sources import check_task_head, load_error, model_config

    check_task(task)
    config = model_config(name_or_path, what, **{k: v for k, v in kwargs.items() if k == "num_labels"})
    get_family(config.model_type)
    if strict_task:
        check_task_head(config, task, name_or_path)
    if getattr(config, "eftnas_subnet", None):
        raise EftnasError(f"model: {name_or_path} is an already sliced sub-network, not a super-network")
    try:
        return AUTO_CLASSES[task].from_pretrained(name_or_path, **kwargs)
    except EftnasError:
        raise
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        raise load_error(exc, name_or_path, what) from None
    except Exception as exc:  # safetensors' SafetensorError derives from Exception only
        if type(exc).__name__ != "SafetensorError":
            raise
        raise load_error(exc, name_or_path, what) from None


def get_submodule(root: nn.Module, path: str) -> Any:
    """A dotted attribute path inside a module (modules, or plain attributes such as an activation function)."""
    obj: Any = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def encoder_layers(model: PreTrainedModel) -> Sequence[nn.Module]:
    """The encoder's layer list (`FamilySpec.layers` inside the base model)."""
    return get_submodule(model.base_model, family_of(model).layers)


def layer_prefix(model: PreTrainedModel, layer: int) -> str:
    """The state-dict key prefix of one encoder layer."""
    return f"{model.base_model_prefix}.{family_of(model).layers}.{layer}."


def model_input_names(model: PreTrainedModel | PretrainedConfig) -> tuple[str, ...]:
    """The inputs a model of this family takes (DistilBERT: no token_type_ids)."""
    return family_of(model).input_names


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json")


def load_tokenizer_if_present(directory: str | Path) -> PreTrainedTokenizerBase | None:
    """The tokenizer saved in a model directory, or None if it has none."""
    if not any((Path(directory) / name).is_file() for name in TOKENIZER_FILES):
        return None
    return AutoTokenizer.from_pretrained(directory)
