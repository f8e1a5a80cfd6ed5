"""Knowledge-distillation losses (EFTNAS: 0.1 task + 0.9 T^2 KL at T=2; MSE for regression).

An objective (`OBJECTIVES`, named by the super-network's `objective` attribute; "task" when it has none) says
what the distillation term compares: "task" compares each example's output (classification, regression, QA),
"causal-lm" compares the next-token logits at every position that predicts a real token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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
    # Layer-wise distillation (TinyBERT, CoFi): MSE between the student's and the teacher's hidden states after
    # every layer (same width), over real tokens, added with this weight; 0 leaves the loss as is.
    hidden_weight: float = 0.0

    @property
    def needs_hidden_states(self) -> bool:
        """Whether the models must return their hidden states (relational or layer-wise KD is on)."""
        return bool(self.rkd_weight or self.hidden_weight)

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise EftnasError(f"kd_temperature: must be positive, got {self.temperature}")
        if self.task_weight < 0 or self.distill_weight < 0:
            raise EftnasError("kd weights: task_weight and distill_weight must be non-negative")
        if min(self.rkd_weight, self.rkd_distance_weight, self.rkd_angle_weight) < 0:
            raise EftnasError("rkd weights: rkd_weight, rkd_distance_weight and rkd_angle_weight must be non-negative")
        if self.hidden_weight < 0:
            raise EftnasError(f"hidden_weight: must be non-negative, got {self.hidden_weight}")


def logits_of(outputs) -> tuple[torch.Tensor, ...]:
    """(logits,) for classification/regression, (start_logits, end_logits) for QA."""
    if getattr(outputs, "start_logits", None) is not None:
        return outputs.start_logits, outputs.end_logits
    return (outputs.logits,)


def layer_outputs_of(outputs) -> tuple[torch.Tensor, ...] | None:
    """Each layer's output hidden states [batch, seq, hidden] (the embeddings left out), if they were returned."""
    hidden = getattr(outputs, "hidden_states", None)
    return None if hidden is None else tuple(hidden[1:])


def hidden_distill_term(
    student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...], mask: torch.Tensor
) -> torch.Tensor:
    """MSE between student and teacher layer outputs at the tokens where `mask` is true, averaged over layers."""
    if len(student) != len(teacher) or student[0].shape[-1] != teacher[0].shape[-1]:
        raise EftnasError(
            f"hidden_weight: layer-wise KD needs the teacher's depth and width ({len(teacher)} layers of "
            f"{teacher[0].shape[-1]}); the student has {len(student)} of {student[0].shape[-1]}"
        )
    keep = mask.bool()
    terms = [F.mse_loss(s[keep].float(), t[keep].detach().float()) for s, t in zip(student, teacher)]
    return sum(terms) / len(terms)


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


def token_distill_term(
    student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...], temperature: float, mask: torch.Tensor
) -> torch.Tensor:
    """T^2 KL(teacher || student) per token [batch, seq, vocab], averaged over the positions where `mask` is true."""
    keep = mask.bool()
    count = keep.sum().clamp(min=1)
    terms = []
    for s, t in zip(student, teacher):
        if s.shape != t.shape:
            raise EftnasError(f"teacher: logits of shape {tuple(t.shape)}, the student's are {tuple(s.shape)}")
        s, t = s[keep].float(), t[keep].float()  # [tokens, vocab]
        kl = F.kl_div(
            F.log_softmax(s / temperature, dim=-1),
            F.log_softmax(t / temperature, dim=-1),
            log_target=True,
            reduction="sum",
        )
        terms.append(kl / count)
    return temperature**2 * sum(terms) / len(terms)


def kd_loss(
    task_loss: torch.Tensor,
    student: tuple[torch.Tensor, ...],
    teacher: tuple[torch.Tensor, ...],
    config: KDConfig,
    regression: bool = False,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """task_weight * task loss + distill_weight * distillation term (per token over `mask` when one is given)."""
    teacher = tuple(t.detach() for t in teacher)
    if mask is None:
        distill = distill_term(student, teacher, config.temperature, regression)
    else:
        distill = token_distill_term(student, teacher, config.temperature, mask)
    return config.task_weight * task_loss + config.distill_weight * distill


def next_token_positions(inputs: Mapping[str, Any]) -> torch.Tensor:
    """[batch, seq] bool: the logits at t predict a real token t+1 (labels[t+1] != -100; else attention_mask[t+1])."""
    labels = inputs.get("labels")
    real = labels != -100 if labels is not None else inputs["attention_mask"].bool()
    positions = torch.zeros_like(real, dtype=torch.bool)
    positions[:, :-1] = real[:, 1:]
    return positions


@dataclass(frozen=True)
class Objective:
    """What distillation compares for a kind of super-network.

    `positions(inputs)` is the token mask of the per-token KD term, or None to compare whole outputs per example;
    `input_names` are the inputs an external teacher takes (None: its encoder family's); `rkd` whether relational
    KD on the first token's vector applies.
    """

    positions: Callable[[Mapping[str, Any]], torch.Tensor | None]
    input_names: tuple[str, ...] | None = None
    rkd: bool = True


OBJECTIVES: dict[str, Objective] = {
    "task": Objective(positions=lambda inputs: None),
    "causal-lm": Objective(positions=next_token_positions, input_names=("input_ids", "attention_mask"), rkd=False),
}


def objective_of(supernet: Any) -> Objective:
    """The objective a super-network declares in its `objective` attribute ("task" when it declares none)."""
    name = getattr(supernet, "objective", "task")
    if name not in OBJECTIVES:
        raise EftnasError(f"objective: {name!r} is not one of {tuple(OBJECTIVES)}")
    return OBJECTIVES[name]
