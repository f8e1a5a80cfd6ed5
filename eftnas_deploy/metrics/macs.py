"""Multiply-accumulate count of a sub-network (linear layers and attention matmuls)."""

from __future__ import annotations

from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig


def attention_macs(heads: int, geometry: ModelGeometry, seq_len: int) -> int:
    """One attention block for one sequence: Q/K/V/output projections plus score and context matmuls."""
    width = heads * geometry.head_dim
    projections = 4 * seq_len * geometry.hidden_size * width
    matmuls = 2 * seq_len * seq_len * width
    return projections + matmuls


def ffn_macs(width: int, geometry: ModelGeometry, seq_len: int) -> int:
    """One FFN block for one sequence."""
    return 2 * seq_len * geometry.hidden_size * width


def head_macs(geometry: ModelGeometry, seq_len: int) -> int:
    """The task head for one sequence (pooler/classifier on the first token, or span logits)."""
    h = geometry.hidden_size
    if geometry.task == "question-answering":
        return seq_len * h * 2
    return h * h + h * geometry.num_labels


def count_macs(subnet: SubnetConfig, geometry: ModelGeometry, seq_len: int = 128, batch: int = 1) -> int:
    """MACs of one forward pass; embedding lookups, softmax and LayerNorm count as free."""
    subnet.validate(geometry)
    per_sequence = head_macs(geometry, seq_len)
    for heads, ffn in zip(subnet.heads, subnet.ffn):
        per_sequence += attention_macs(heads, geometry, seq_len) + ffn_macs(ffn, geometry, seq_len)
    return batch * per_sequence
