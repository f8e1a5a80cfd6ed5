"""Parameter count of a sub-network (equal to the sliced dense model's parameter count)."""

from __future__ import annotations

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


def layer_params(heads: int, ffn: int, geometry: ModelGeometry) -> int:
    h = geometry.hidden_size
    width = heads * geometry.head_dim
    attention = 4 * h * width + 3 * width + h + 2 * h if heads else 0
    feed_forward = 2 * h * ffn + ffn + h + 2 * h if ffn else 0
    return attention + feed_forward


def count_params(subnet: SubnetConfig, geometry: ModelGeometry) -> int:
    subnet.validate(geometry)
    total = embedding_params(geometry) + head_params(geometry)
    return total + sum(layer_params(hd, f, geometry) for hd, f in zip(subnet.heads, subnet.ffn))
