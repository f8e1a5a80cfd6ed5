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

import numpy as np

from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data.features import PreparedSplit
from eftnas_deploy.evaluation import metrics_of_logits, predict_logits
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


class HeldOutObjective:
    """The search's accuracy axis: `metric` of a sub-network on `held_out` (higher is better), callable.

    Each evaluation also keeps the sub-network's task score, computed from the same forward pass, so that
    `task_score` of a sub-network the search already evaluated costs nothing.
    """

    def __init__(
        self,
        supernet: SuperNetwork,
        held_out: PreparedSplit,
        metric: str,
        reference: SubnetConfig,
        batch_size: int = 64,
    ) -> None:
        if metric not in SEARCH_METRICS:
            raise ValueError(f"metric: {metric!r} is not one of {SEARCH_METRICS}")
        self.supernet, self.held_out, self.metric, self.batch_size = supernet, held_out, metric, batch_size
        self._scores: dict[SubnetConfig, float] = {}
        self._target = self._logits(reference) if metric == "distillation" else None

    def _logits(self, subnet: SubnetConfig) -> list[list[np.ndarray]]:
        logits = predict_logits(self.supernet, subnet, self.held_out, self.batch_size)
        self._scores[subnet] = metrics_of_logits(self.held_out, logits)["score"]
        return logits

    def __call__(self, subnet: SubnetConfig) -> float:
        logits = self._logits(subnet)
        if self._target is None:
            return self._scores[subnet]
        return math.exp(-output_divergence(self._target, logits, self.held_out.task.kind))

    def task_score(self, subnet: SubnetConfig) -> float:
        """The task metric of `subnet` on the held-out rows (from the evaluation's pass where there was one)."""
        if subnet not in self._scores:
            self._logits(subnet)
        return self._scores[subnet]
