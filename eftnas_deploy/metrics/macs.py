"""Multiply-accumulate count of a sub-network (linear layers and attention matmuls)."""

from __future__ import annotations

from eftnas_deploy.core.dimensions import dimension
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig


def head_macs(geometry: ModelGeometry, seq_len: int) -> int:
    """The task head for one sequence (pooler/classifier on the first token, or span logits)."""
    h = geometry.hidden_size
    if geometry.task == "question-answering":
        return seq_len * h * 2
    return h * h + h * geometry.num_labels


def count_macs(subnet: SubnetConfig, geometry: ModelGeometry, seq_len: int = 128, batch: int = 1) -> int:
    """MACs of one forward pass: each dimension's blocks (see `core.dimensions`) plus the task head.

    Embedding lookups, softmax and LayerNorm count as free.
    """
    subnet.validate(geometry)
    per_sequence = head_macs(geometry, seq_len)
    for name, values in subnet.items():
        cost = dimension(name).macs
        per_sequence += sum(cost(value, geometry, seq_len) for value in values)
    return batch * per_sequence
