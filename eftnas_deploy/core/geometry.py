"""The shape of an encoder model: what a SubnetConfig, a LUT or a search space must fit."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.family import get_family

if TYPE_CHECKING:
    from transformers import PretrainedConfig

SUPPORTED_TASKS = ("text-classification", "question-answering")


@dataclass(frozen=True)
class ModelGeometry:
    """Architecture fields of a BERT-style encoder and its task head (type_vocab_size 0: no segment inputs)."""

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
        get_family(self.model_type)  # raises for a model type no family file declares
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
        """Read the geometry of a HF config of a registered family (the parent's, for a sliced model)."""
        parent = getattr(config, "eftnas_parent", None)
        if parent:
            return cls.from_dict(parent)
        if getattr(config, "position_embedding_type", "absolute") != "absolute":
            raise EftnasError("position_embedding_type: only 'absolute' position embeddings are supported")
        if getattr(config, "is_decoder", False):
            raise EftnasError("is_decoder: only encoder models are supported")
        if task is None:
            task = task_from_architectures(getattr(config, "architectures", None) or [])
        family = get_family(config.model_type)
        fields = {name: family.read(config, name, 0) for name in family.config_fields}
        return cls(
            model_type=config.model_type,
            head_dim=fields["hidden_size"] // fields["num_heads"],
            **fields,
            task=task,
            num_labels=config.num_labels if task == "text-classification" else 2,
        )

    @property
    def max_seq_len(self) -> int:
        """The longest input the position embeddings cover (less the family's reserved positions: RoBERTa 2)."""
        return self.max_position_embeddings - get_family(self.model_type).position_offset

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
