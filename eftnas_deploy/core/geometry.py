"""The shape of an encoder model: what a SubnetConfig, a LUT or a search space must fit."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eftnas_deploy.core.errors import EftnasError

if TYPE_CHECKING:
    from transformers import PretrainedConfig

SUPPORTED_MODEL_TYPES = ("bert", "roberta")
SUPPORTED_TASKS = ("text-classification", "question-answering")


@dataclass(frozen=True)
class ModelGeometry:
    """Architecture fields of a BERT-style encoder and its task head."""

    model_type: str
    num_layers: int
    num_heads: int
    head_dim: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    type_vocab_size: int
    task: str = "text-classification"
    num_labels: int = 2

    def __post_init__(self) -> None:
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise EftnasError(
                f"model_type: {self.model_type!r} is not supported (expected one of {SUPPORTED_MODEL_TYPES})"
            )
        if self.task not in SUPPORTED_TASKS:
            raise EftnasError(f"task: {self.task!r} is not supported (expected one of {SUPPORTED_TASKS})")
        for field in ("num_layers", "num_heads", "head_dim", "hidden_size", "intermediate_size"):
            if int(getattr(self, field)) <= 0:
                raise EftnasError(f"{field}: must be positive, got {getattr(self, field)}")
        if self.num_heads * self.head_dim != self.hidden_size:
            raise EftnasError(
                f"hidden_size: {self.hidden_size} != num_heads ({self.num_heads}) * head_dim ({self.head_dim})"
            )

    @classmethod
    def from_config(cls, config: PretrainedConfig, task: str | None = None) -> ModelGeometry:
        """Read the geometry of a HF BERT/RoBERTa config (the parent's, for a sliced model)."""
        parent = getattr(config, "eftnas_parent", None)
        if parent:
            return cls.from_dict(parent)
        if getattr(config, "position_embedding_type", "absolute") != "absolute":
            raise EftnasError("position_embedding_type: only 'absolute' position embeddings are supported")
        if getattr(config, "is_decoder", False):
            raise EftnasError("is_decoder: only encoder models are supported")
        if task is None:
            task = task_from_architectures(getattr(config, "architectures", None) or [])
        return cls(
            model_type=config.model_type,
            num_layers=config.num_hidden_layers,
            num_heads=config.num_attention_heads,
            head_dim=config.hidden_size // config.num_attention_heads,
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            vocab_size=config.vocab_size,
            max_position_embeddings=config.max_position_embeddings,
            type_vocab_size=config.type_vocab_size,
            task=task,
            num_labels=config.num_labels if task == "text-classification" else 2,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelGeometry:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise EftnasError(f"geometry: unknown field(s) {sorted(unknown)}")
        missing = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING} - set(data)
        if missing:
            raise EftnasError(f"geometry: missing field(s) {sorted(missing)}")
        return cls(**data)

    def mismatches(self, other: ModelGeometry, fields: tuple[str, ...] | None = None) -> list[str]:
        """Names and values of the fields where two geometries differ."""
        fields = fields or tuple(f.name for f in dataclasses.fields(self))
        return [
            f"{name}: {getattr(self, name)} != {getattr(other, name)}"
            for name in fields
            if getattr(self, name) != getattr(other, name)
        ]


def task_from_architectures(architectures: list[str]) -> str:
    """Infer the task from a config's `architectures` (defaults to text-classification)."""
    if any(name.endswith("ForQuestionAnswering") for name in architectures):
        return "question-answering"
    return "text-classification"
