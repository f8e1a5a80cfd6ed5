"""Calibration statistics of a plain HF encoder: PCA of FFN activations and linear CKA between heads (ELM).

Both stream over batches: per layer they accumulate the token count, the feature sums and X^T X (float64) of
the non-padding tokens, never the activations themselves. FFN activations are the activation function's
outputs (inputs of the FFN down projection); head outputs are each head's context vectors (the attention
output projection's input, `head_dim` columns per head).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import PreTrainedModel

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.families.models import encoder_layers, family_of, get_submodule, model_input_names, task_of


@dataclass
class Moments:
    """Streaming first and second moments of row vectors: count, sum and X^T X (float64)."""

    count: int = 0
    total: torch.Tensor | None = None
    gram: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().to("cpu", torch.float64).reshape(-1, x.shape[-1])
        if self.total is None:
            self.total = torch.zeros(x.shape[1], dtype=torch.float64)
            self.gram = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
        self.count += x.shape[0]
        self.total += x.sum(0)
        self.gram += x.T @ x

    def covariance(self) -> torch.Tensor:
        """Unbiased covariance of everything added (the same as torch.cov of the stacked rows)."""
        if self.count < 2:
            raise EftnasError("calibration: fewer than two tokens were seen")
        mean = self.total / self.count
        return (self.gram - self.count * torch.outer(mean, mean)) / (self.count - 1)


@dataclass
class _Collector:
    moments: list[Moments] = field(default_factory=list)
    mask: torch.Tensor | None = None

    def hook(self, layer: int):
        def record(x: torch.Tensor) -> None:
            rows = x if self.mask is None else x[self.mask.bool()]
            self.moments[layer].add(rows)

        return record


@contextmanager
def _hooks(model: PreTrainedModel, path_of, pre: bool):
    """Hook the module at path_of(family) in every layer; yields the collector of their activations."""
    family = family_of(model)
    layers = encoder_layers(model)
    collector = _Collector([Moments() for _ in layers])
    handles = []
    for i, layer in enumerate(layers):
        module = get_submodule(layer, path_of(family))
        if not isinstance(module, nn.Module):
            raise EftnasError(f"calibration: {path_of(family)} of {family.model_type} is not a module to hook")
        record = collector.hook(i)
        if pre:
            handles.append(module.register_forward_pre_hook(lambda _m, args, r=record: r(args[0])))
        else:
            handles.append(module.register_forward_hook(lambda _m, _a, out, r=record: r(out)))
    try:
        yield collector
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def _run(model: PreTrainedModel, batches: Iterable[dict[str, torch.Tensor]], collector: _Collector) -> None:
    names = model_input_names(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            inputs = {k: v.to(device) for k, v in batch.items() if k in names}
            collector.mask = inputs.get("attention_mask")
            model(**inputs)
    finally:
        model.train(was_training)
    if any(m.count == 0 for m in collector.moments):
        raise EftnasError("calibration: no activations were recorded (no batches, or not a plain HF encoder)")


def ffn_moments(model: PreTrainedModel, batches: Iterable[dict[str, torch.Tensor]]) -> list[Moments]:
    """Per layer, the moments of the FFN hidden activations (after the activation function)."""
    with _hooks(model, lambda f: f.ffn.activation, pre=False) as collector:
        _run(model, batches, collector)
    return collector.moments


def head_moments(model: PreTrainedModel, batches: Iterable[dict[str, torch.Tensor]]) -> list[Moments]:
    """Per layer, the joint moments of all heads' context vectors ([tokens, heads * head_dim])."""
    with _hooks(model, lambda f: f.attention.output, pre=True) as collector:
        _run(model, batches, collector)
    return collector.moments


def explained_variance(covariance: torch.Tensor) -> torch.Tensor:
    """Cumulative fraction of the variance explained by the top-k principal components, k = 1..D."""
    eigenvalues = torch.linalg.eigvalsh(covariance).flip(0).clamp_min(0)
    total = eigenvalues.sum()
    if total <= 0:
        return torch.ones_like(eigenvalues)
    return eigenvalues.cumsum(0) / total


def components_for(covariance: torch.Tensor, fraction: float) -> int:
    """The number of principal components needed to explain `fraction` of the variance."""
    if not 0 < fraction <= 1:
        raise EftnasError(f"pca_variance: must be in (0, 1], got {fraction}")
    cumulative = explained_variance(covariance)
    return int(torch.searchsorted(cumulative, torch.tensor(fraction - 1e-12, dtype=cumulative.dtype))) + 1


def ffn_pca_components(
    model: PreTrainedModel, batches: Iterable[dict[str, torch.Tensor]], fraction: float
) -> list[int]:
    """Per layer, the principal components of the FFN activations that explain `fraction` of their variance."""
    return [components_for(m.covariance(), fraction) for m in ffn_moments(model, batches)]


def cka_from_covariance(covariance: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[heads, heads] linear CKA from the joint covariance of the heads' (equal-width) features."""
    width = covariance.shape[0] // num_heads
    blocks = covariance.view(num_heads, width, num_heads, width).permute(0, 2, 1, 3)
    cross = blocks.square().sum(dim=(-2, -1))  # ||C_ij||_F^2
    norms = cross.diagonal().sqrt()
    return cross / torch.outer(norms, norms).clamp_min(1e-30)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two full feature matrices [n, d1], [n, d2] (Kornblith et al., 2019): direct formula."""
    x = (x - x.mean(0)).double()
    y = (y - y.mean(0)).double()
    return float((y.T @ x).square().sum() / ((x.T @ x).norm() * (y.T @ y).norm()))


def head_cka(model: PreTrainedModel, batches: Iterable[dict[str, torch.Tensor]]) -> torch.Tensor:
    """[layers, heads, heads] linear CKA between every pair of heads' context vectors within a layer."""
    heads = ModelGeometry.from_config(model.config, task=task_of(model)).num_heads
    return torch.stack([cka_from_covariance(m.covariance(), heads) for m in head_moments(model, batches)])
