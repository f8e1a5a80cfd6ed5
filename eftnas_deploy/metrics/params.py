"""Parameter count of a sub-network (equal to the sliced dense model's parameter count)."""

from __future__ import annotations

from eftnas_deploy.core.dimensions import dimension
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig


def embedding_params(geometry: ModelGeometry) -> int:
    h = geometry.hidden_size
    return (geometry.vocab_size + geometry.max_position_embeddings + geometry.type_vocab_size) * h + 2 * h


def head_params(geometry: ModelGeometry) -> int:
    h = geometry.hidden_size
    if geometry.task == "question-answering":
        return h * 2 + 2
    # BERT: pooler + classifier; RoBERTa: classification head dense + out_proj. Same count.
    return h * h + h + h * geometry.num_labels + geometry.num_labels


def count_params(subnet: SubnetConfig, geometry: ModelGeometry) -> int:
    """Embeddings, task head and each dimension's blocks (see `core.dimensions`)."""
    subnet.validate(geometry)
    total = embedding_params(geometry) + head_params(geometry)
    for name, values in subnet.items():
        cost = dimension(name).params
        total += sum(cost(value, geometry) for value in values)
    return total
