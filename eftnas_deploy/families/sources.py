"""Model and tokenizer sources given by the user: one clear error line instead of a hub-client traceback.

`model_config` tells a missing local directory, a directory without config.json and an unreachable hub name
apart; `check_task_head` refuses a model whose trained head is for another task (a random head would be
attached silently otherwise); `load_error` turns a corrupt or truncated weights file into one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transformers import AutoConfig, PretrainedConfig

from eftnas_deploy.core.errors import EftnasError

HEADS = {"ForSequenceClassification": "text-classification", "ForQuestionAnswering": "question-answering"}


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first sentence of an exception message, on one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    sentence = text.split(". ")[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


def looks_local(name: str) -> bool:
    """A name that can only be a local path (a hub id is `name` or `org/name`)."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)


def check_local_source(name: str, what: str, marker: str | None = "config.json") -> Path | None:
    """The local directory `name` (checked to hold `marker`), or None for a hub name."""
    path = Path(name).expanduser()
    if path.is_dir():
        if marker and not (path / marker).is_file():
            raise EftnasError(f"{what}: {name} has no {marker} (not a model directory)")
        return path
    if path.exists():
        raise EftnasError(f"{what}: {name} is a file, not a model directory")
    if looks_local(name) or not name.strip():
        raise EftnasError(f"{what}: {name} does not exist")
    return None


def model_config(name: str, what: str = "model", **kwargs: Any) -> PretrainedConfig:
    """AutoConfig of a local model directory or hub name, with errors naming `what`."""
    local = check_local_source(str(name), what)
    try:
        return AutoConfig.from_pretrained(str(name), **kwargs)
    except (OSError, ValueError) as exc:
        if isinstance(exc, EftnasError):
            raise
        if local is not None:
            raise EftnasError(f"{what}: {local / 'config.json'} cannot be read ({first_line(exc)})") from None
        raise EftnasError(
            f"{what}: {name!r} is not a local directory and could not be loaded from the hub ({first_line(exc)})"
        ) from None


def load_tokenizer(name: str, what: str = "tokenizer"):
    """AutoTokenizer of a local directory or hub name, with errors naming `what`."""
    from transformers import AutoTokenizer

    local = check_local_source(str(name), what, marker=None)
    try:
        return AutoTokenizer.from_pretrained(str(name))
    except (OSError, ValueError, TypeError) as exc:
        where = f"{name} holds no usable tokenizer" if local else f"{name!r} could not be loaded as a tokenizer"
        raise EftnasError(f"{what}: {where} ({first_line(exc)})") from None


def head_task(config: PretrainedConfig) -> str | None:
    """The task of the trained head a config describes (None for a bare encoder or MLM checkpoint)."""
    parent = getattr(config, "eftnas_parent", None)
    if isinstance(parent, dict) and parent.get("task"):
        return parent["task"]
    for arch in getattr(config, "architectures", None) or []:
        for suffix, task in HEADS.items():
            if arch.endswith(suffix):
                return task
    return None


def infer_task(name: str, what: str = "model") -> str:
    """The task of a model's trained head (text-classification for a bare encoder)."""
    return head_task(model_config(name, what)) or "text-classification"


def check_task_head(config: PretrainedConfig, task: str, name: str, what: str = "task") -> None:
    """Refuse `task` when the model's trained head is for another one (its head would be replaced by a random one)."""
    trained = head_task(config)
    if trained is not None and trained != task:
        arch = (getattr(config, "architectures", None) or ["?"])[0]
        raise EftnasError(f"{what}: {name} holds a {trained} model ({arch}), not {task}; pass --task {trained}")


def load_error(exc: BaseException, name: str, what: str) -> EftnasError:
    """A one-line error for weights that cannot be read (corrupt, truncated, wrong shapes)."""
    weights = [p.name for p in Path(name).glob("*.safetensors")] + [p.name for p in Path(name).glob("*.bin")]
    target = f"{Path(name) / weights[0]}" if len(weights) == 1 else str(name)
    return EftnasError(f"{what}: cannot load the weights in {target}: corrupt or truncated? ({first_line(exc)})")
