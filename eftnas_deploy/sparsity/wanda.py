"""Wanda pruning (Sun et al., 2023): drop the weights with the smallest |W_ij| * ||X_j||_2, per output row.

`X_j` is input channel j of a linear layer over the calibration tokens (padding excluded when the batch
has an `attention_mask`). Like the reference implementation, layers are pruned in order: the activations
that score layer i come from the model with layers < i already pruned. Sparsity is unstructured (a
fraction of each row) or N:M (at most N non-zeros in every M consecutive inputs of a row, e.g. 2:4).

The keep-masks it returns feed `ElasticLoRA.set_masks`, whose masked adapter update keeps the pruned
zeros through training and merging (SQFT's sparsity-preserving merge).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.family import FamilySpec, get_family
from eftnas_deploy.families.models import family_of


def encoder_linears(family: FamilySpec) -> str:
    """A regex of every linear layer in an encoder layer of `family` (Q, K, V, attention output, FFN up, down)."""
    paths = (*family.attention.rows, family.attention.output, family.ffn.up, family.ffn.down)
    return rf".*\.{re.escape(family.layers)}\.(\d+)\.(?:{'|'.join(re.escape(path) for path in paths)})"


ENCODER_LINEARS = encoder_linears(get_family("bert"))  # BERT's, for reference; by default the model's family
_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


@dataclass
class WandaResult:
    """Keep-masks (True = kept, the weight's shape) and the achieved sparsity, by module name."""

    masks: dict[str, torch.Tensor]
    report: dict[str, float] = field(default_factory=dict)

    @property
    def sparsity(self) -> float:
        """Fraction of zeroed weights over all pruned modules."""
        total = sum(m.numel() for m in self.masks.values())
        return sum(int((~m).sum()) for m in self.masks.values()) / max(1, total)


def wanda_scores(weight: torch.Tensor, input_norm: torch.Tensor) -> torch.Tensor:
    """|W| * ||X_j||_2 broadcast over output rows (`weight` is out x in, `input_norm` has `in` entries)."""
    return weight.abs().float() * input_norm.float()[None, :]


def keep_mask(scores: torch.Tensor, sparsity: float = 0.5, pattern: tuple[int, int] | None = None) -> torch.Tensor:
    """Per output row, keep the highest scores: a `sparsity` fraction pruned, or N:M with `pattern=(n, m)`."""
    rows, cols = scores.shape
    mask = torch.ones_like(scores, dtype=torch.bool)
    if pattern is not None:
        n, m = pattern
        if not 0 < n <= m or cols % m:
            raise EftnasError(f"pattern: {n}:{m} needs 0 < n <= m and m dividing the {cols} input channels")
        groups = scores.reshape(rows, cols // m, m)
        pruned = torch.topk(groups, m - n, dim=-1, largest=False).indices
        return mask.reshape(rows, cols // m, m).scatter(-1, pruned, False).reshape(rows, cols)
    if not 0.0 <= sparsity < 1.0:
        raise EftnasError(f"sparsity: must be in [0, 1), got {sparsity}")
    k = int(cols * sparsity)
    if k:
        pruned = torch.sort(scores, dim=-1, stable=True).indices[:, :k]
        mask.scatter_(-1, pruned, False)
    return mask


def _targets(model: nn.Module, targets: str | None) -> dict[str, nn.Linear]:
    """The linear layers `targets` matches (None: every encoder-layer linear of the model's family)."""
    if targets is None:
        targets = encoder_linears(family_of(model))
    found = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and re.fullmatch(targets, n)}
    if not found:
        raise EftnasError(f"targets: no linear layer of the model matches {targets!r}")
    return found


@torch.no_grad()
def input_norms(
    model: nn.Module, modules: Mapping[str, nn.Linear], batches: Iterable[Mapping[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """||X_j||_2 of each module's input channels over the non-padding tokens of `batches`."""
    sums = {name: torch.zeros(m.in_features, dtype=torch.float64) for name, m in modules.items()}
    tokens: list[torch.Tensor | None] = [None]

    def hook(name: str):
        def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            x = args[0].reshape(-1, module.in_features)
            if tokens[0] is not None and x.shape[0] == tokens[0].numel():
                x = x[tokens[0]]
            sums[name] += x.double().pow(2).sum(0).cpu()

        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in modules.items()]
    try:
        for batch in batches:
            inputs = {k: v for k, v in batch.items() if k in _MODEL_INPUTS}
            mask = inputs.get("attention_mask")
            tokens[0] = None if mask is None else mask.reshape(-1).bool()
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    return {name: s.sqrt().float() for name, s in sums.items()}


@torch.no_grad()
def wanda_prune(
    model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    sparsity: float = 0.5,
    pattern: tuple[int, int] | None = None,
    targets: str | None = None,
    sequential: bool = True,
) -> WandaResult:
    """Prune `model` in place with Wanda on calibration `batches` (dicts of model inputs; a few suffice).

    `targets` is a full-name regex whose first group, when `sequential`, is the layer index: each layer
    is then scored on activations of the model with the earlier layers already pruned.
    """
    targets = targets or encoder_linears(family_of(model))
    modules = _targets(model, targets)
    batches = list(batches)
    if not batches:
        raise EftnasError("batches: Wanda needs at least one calibration batch")
    order: dict[int, list[str]] = {}
    for name in modules:
        match = re.fullmatch(targets, name)
        key = int(match.group(1)) if sequential and match and match.groups() and match.group(1) else 0
        order.setdefault(key, []).append(name)
    was_training = model.training
    model.eval()
    result = WandaResult(masks={})
    try:
        for key in sorted(order):
            group = {name: modules[name] for name in order[key]}
            norms = input_norms(model, group, batches)
            for name, module in group.items():
                mask = keep_mask(wanda_scores(module.weight, norms[name]), sparsity, pattern)
                module.weight.mul_(mask.to(module.weight.dtype))
                result.masks[name] = mask
                result.report[name] = 1.0 - mask.float().mean().item()
    finally:
        model.train(was_training)
    return result


def masks_from_weights(model: nn.Module, targets: str | None = None) -> dict[str, torch.Tensor]:
    """Keep-masks (weight != 0) of an already pruned model's target layers."""
    return {name: module.weight.detach() != 0 for name, module in _targets(model, targets).items()}
