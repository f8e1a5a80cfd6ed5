"""What the search maximises on the held-out rows: the task metric, or agreement with the largest sub-network.

`score` is the task metric (accuracy, F1, ...) of the sub-network's predictions. `distillation` is
exp(-D), D the mean divergence of the sub-network's outputs from the largest sub-network's on the same rows:
the KL divergence of the softmax for classification and QA (start and end positions averaged), the squared
difference for regression. It is 1 for the largest sub-network and falls towards 0 as the outputs drift.
It needs no labels and counts every row's whole output distribution, not only whether the argmax is right,
so on a few hundred held-out rows it ranks sub-networks with far less noise than accuracy does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data.features import PreparedSplit
from eftnas_deploy.evaluation import evaluate, predict_logits
from eftnas_deploy.supernet.elastic import SuperNetwork

SEARCH_METRICS = ("score", "distillation")
METRIC_LABELS = {
    "score": "held-out score",
    "distillation": "exp(-divergence from the largest sub-network)",
}


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def output_divergence(reference: list[list[np.ndarray]], outputs: list[list[np.ndarray]], kind: str) -> float:
    """Mean divergence of `outputs` from `reference` (both `predict_logits` results of the same rows)."""
    parts = []
    for ref_rows, out_rows in zip(reference, outputs, strict=True):
        divergences = []
        for ref, out in zip(ref_rows, out_rows, strict=True):
            ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
            if kind == "regression":
                divergences.append(float(np.mean((ref - out) ** 2)))
            else:
                ref_log, out_log = _log_softmax(ref), _log_softmax(out)
                divergences.append(float(np.sum(np.exp(ref_log) * (ref_log - out_log))))
        parts.append(float(np.mean(divergences)))
    return float(np.mean(parts))


def held_out_objective(
    supernet: SuperNetwork,
    held_out: PreparedSplit,
    metric: str,
    reference: SubnetConfig,
    batch_size: int = 64,
) -> Callable[[SubnetConfig], float]:
    """The search's accuracy axis: `metric` of a sub-network on `held_out` (higher is better)."""
    if metric == "score":
        return lambda subnet: evaluate(supernet, subnet, held_out, batch_size=batch_size)["score"]
    if metric != "distillation":
        raise ValueError(f"metric: {metric!r} is not one of {SEARCH_METRICS}")
    kind = held_out.task.kind
    target = predict_logits(supernet, reference, held_out, batch_size)

    def distillation(subnet: SubnetConfig) -> float:
        return math.exp(-output_divergence(target, predict_logits(supernet, subnet, held_out, batch_size), kind))

    return distillation
