"""What every exported artifact carries: the SubnetConfig, its cost and the source weights' fingerprint."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from transformers import PreTrainedModel

from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.metrics import count_macs, count_params

METADATA_FILE = "eftnas.json"
MACS_SEQ_LEN = 128  # the sequence length MACs are quoted at, unless the model's positions stop earlier


def max_seq_len(geometry: ModelGeometry) -> int:
    """The longest input the model's position embeddings cover (RoBERTa's start after the padding index)."""
    return geometry.max_seq_len


def fingerprint_state_dict(state: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of a state dict (independent of the file format)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return f"sha256:{digest.hexdigest()}"


def artifact_metadata(dense: PreTrainedModel, source_fingerprint: str | None) -> dict[str, Any]:
    """Provenance and cost of a sliced model: stored beside and inside every artifact of a bundle."""
    subnet = SubnetConfig.from_dict(dense.config.eftnas_subnet)
    geometry = ModelGeometry.from_dict(dense.config.eftnas_parent)
    full = SubnetConfig.full(geometry)
    seq_len = min(MACS_SEQ_LEN, max_seq_len(geometry))
    macs = count_macs(subnet, geometry, seq_len=seq_len)
    return {
        "format_version": 1,
        "task": geometry.task,
        "subnet": subnet.to_dict(),
        "parent_geometry": geometry.to_dict(),
        "macs": macs,
        "macs_full": count_macs(full, geometry, seq_len=seq_len),
        "macs_seq_len": seq_len,
        "max_seq_len": max_seq_len(geometry),
        "params": count_params(subnet, geometry),
        "params_full": count_params(full, geometry),
        "source_fingerprint": source_fingerprint,
        "model_fingerprint": fingerprint_state_dict(dense.state_dict()),
    }
