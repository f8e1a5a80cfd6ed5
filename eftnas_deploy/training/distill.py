"""Knowledge-distillation losses (EFTNAS: 0.1 task + 0.9 T^2 KL at T=2; MSE for regression)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from eftnas_deploy.core.errors import EftnasError


@dataclass(frozen=True)
class KDConfig:
    temperature: float = 2.0
    task_weight: float = 0.1
    distill_weight: float = 0.9
    # Relational KD (Park et al., 2019) on the last layer's [CLS] vector, added on top: 0 leaves the loss as is.
    rkd_weight: float = 0.0
    rkd_distance_weight: float = 1.0
    rkd_angle_weight: float = 2.0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise EftnasError(f"kd_temperature: must be positive, got {self.temperature}")
        if self.task_weight < 0 or self.distill_weight < 0:
            raise EftnasError("kd weights: task_weight and distill_weight must be non-negative")
        if min(self.rkd_weight, self.rkd_distance_weight, self.rkd_angle_weight) < 0:
            raise EftnasError("rkd weights: rkd_weight, rkd_distance_weight and rkd_angle_weight must be non-negative")


def logits_of(outputs) -> tuple[torch.Tensor, ...]:
    """(logits,) for classification/regression, (start_logits, end_logits) for QA."""
    if getattr(outputs, "start_logits", None) is not None:
        return outputs.start_logits, outputs.end_logits
    return (outputs.logits,)


def representation_of(outputs) -> torch.Tensor | None:
    """The last layer's first-token ([CLS]) hidden state [batch, hidden], if the hidden states were returned."""
    hidden = getattr(outputs, "hidden_states", None)
    return None if hidden is None else hidden[-1][:, 0]


def distill_term(
    student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...], temperature: float, regression: bool
) -> torch.Tensor:
    """T^2 KL(teacher || student) on softened logits, averaged over outputs (start/end for QA); MSE if regression."""
    if regression:
        return sum(F.mse_loss(s.float(), t.float()) for s, t in zip(student, teacher)) / len(student)
    terms = [
        F.kl_div(
            F.log_softmax(s.float() / temperature, dim=-1),
            F.log_softmax(t.float() / temperature, dim=-1),
            log_target=True,
            reduction="batchmean",
        )
        for s, t in zip(student, teacher)
    ]
    return temperature**2 * sum(terms) / len(terms)


def kd_loss(
    task_loss: torch.Tensor,
    student: tuple[torch.Tensor, ...],
    teacher: tuple[torch.Tensor, ...],
    config: KDConfig,
    regression: bool = False,
) -> torch.Tensor:
    """task_weight * task loss + distill_weight * distillation term."""
    distill = distill_term(student, tuple(t.detach() for t in teacher), config.temperature, regression)
    return config.task_weight * task_loss + config.distill_weight * distill
