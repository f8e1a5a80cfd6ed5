"""Load any model the toolkit handles: a pretrained/super-network directory or a sliced sub-network."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedModel

from eftnas_deploy.core.family import get_family
from eftnas_deploy.families.models import check_task, load_pretrained
from eftnas_deploy.families.sources import check_task_head, load_error, model_config
from eftnas_deploy.supernet.slicing import load_sliced


def load_model(
    name_or_path: str,
    task: str = "text-classification",
    *,
    what: str = "model",
    strict_task: bool = False,
    **kwargs: Any,
) -> PreTrainedModel:
    """Load a pretrained model of a registered family (hub name or local directory), or a sliced directory.

    Errors name `what` (the flag or config field the path came from). `strict_task` refuses a model whose
    trained head is for another task instead of attaching a new, random head.
    """
    config = model_config(name_or_path, what, **{k: v for k, v in kwargs.items() if k == "num_labels"})
    if not getattr(config, "eftnas_subnet", None):
        return load_pretrained(name_or_path, task, what=what, strict_task=strict_task, **kwargs)
    check_task(task)
    get_family(config.model_type)
    if strict_task:
        check_task_head(config, task, name_or_path)
    try:
        return load_sliced(name_or_path)
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        raise load_error(exc, name_or_path, what) from None
