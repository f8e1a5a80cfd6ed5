"""Unstructured and N:M sparsity for the base model of elastic LoRA (Wanda); see `eftnas_deploy.sparsity.wanda`."""

from eftnas_deploy.sparsity.wanda import (
    ENCODER_LINEARS,
    WandaResult,
    input_norms,
    keep_mask,
    masks_from_weights,
    wanda_prune,
    wanda_scores,
)

__all__ = [
    "ENCODER_LINEARS",
    "WandaResult",
    "input_norms",
    "keep_mask",
    "masks_from_weights",
    "wanda_prune",
    "wanda_scores",
]
