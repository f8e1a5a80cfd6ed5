"""SuperNetTrainer: HF Trainer whose steps train several sub-networks of a weight-sharing super-network."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel, Trainer

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.families.models import model_input_names
from eftnas_deploy.supernet.elastic import SuperNetwork
from eftnas_deploy.supernet.switchable import Switchable
from eftnas_deploy.training.distill import (
    KDConfig,
    hidden_distill_term,
    kd_loss,
    layer_outputs_of,
    logits_of,
    objective_of,
)
from eftnas_deploy.training.growth import GROWTH, pca_growth_ranking
from eftnas_deploy.training.rkd import rkd_loss
from eftnas_deploy.training.sampling import DISTILL_SOURCES, SubnetSampler


class SuperNetTrainer(Trainer):
    """Trains `supernet.model` with a sub-network strategy (see `SubnetSampler`).

    Each step runs the planned sub-networks on the same batch; their gradients are accumulated
    (one backward each) and the optimizer steps once. With `teacher` (the fine-tuned model),
    losses become `kd.task_weight * task + kd.distill_weight * T^2 KL` against it. `distill_from`
    says whom the "student" sub-networks of the kd/full strategies follow: "teacher" (every
    sub-network distils from the external teacher; the default when one is given) or "largest"
    (in-place distillation from the largest sub-network's detached outputs, as without a teacher).
    `kd.rkd_weight` > 0 adds that weight times the relational KD loss (`training.rkd`) between the last
    layer's [CLS] vectors of the sub-network and of whom it distils from; `kd.hidden_weight` > 0 adds the
    layer-wise MSE between their hidden states after every layer (`distill.hidden_distill_term`).
    `growth="pca"` widens the FFN blocks progressively, most PCA components first, in `growth_stages` stages
    (0: one per epoch).
    `budget` (a predicate on sub-networks) keeps the sampled sub-networks within the search's budget.
    Logging, checkpoints, resume, mixed precision and torchrun come from `Trainer`.

    What differs between kinds of super-network is declared by the super-network: its `objective`
    (`training.distill.OBJECTIVES`: "causal-lm" distils per next-token position) and, where the encoder
    dimensions do not describe its geometry, its own `validate_space(search_space)` (decoders).
    """

    def __init__(
        self,
        *args: Any,
        supernet: SuperNetwork | Switchable,
        search_space: SearchSpace,
        strategy: str = "sandwich",
        num_random: int = 1,
        teacher: PreTrainedModel | None = None,
        kd: KDConfig | None = None,
        sampling_seed: int | None = None,
        distill_from: str = "teacher",
        growth: str = "none",
        growth_stages: int = 0,
        budget: Callable[[SubnetConfig], bool] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("model", supernet.model)
        if kwargs["model"] is not supernet.model:
            raise EftnasError("model: SuperNetTrainer trains supernet.model; do not pass another model")
        if distill_from not in DISTILL_SOURCES:
            raise EftnasError(f"distill_from: {distill_from!r} is not one of {DISTILL_SOURCES}")
        super().__init__(*args, **kwargs)
        if hasattr(supernet, "validate_space"):
            supernet.validate_space(search_space)
        else:
            search_space.validate(supernet.geometry)
        self.supernet = supernet
        self.objective = objective_of(supernet)
        if growth not in GROWTH:
            raise EftnasError(f"growth: {growth!r} is not one of {GROWTH}")
        ranking = pca_growth_ranking(search_space) if growth == "pca" else ()
        stages = growth_stages or max(1, math.ceil(self.args.num_train_epochs))
        self.sampler = SubnetSampler(
            search_space, strategy, num_random, self.args.seed if sampling_seed is None else sampling_seed,
            growth=ranking, growth_stages=stages, fits=budget,
        )  # fmt: skip
        self.kd = kd or KDConfig()
        if self.kd.rkd_weight and not self.objective.rkd:
            raise EftnasError("rkd_weight: relational KD does not apply to this super-network's objective")
        self.teacher = teacher
        self.distill_from = distill_from if teacher is not None else "largest"
        if teacher is not None:
            self.teacher = teacher.to(self.args.device).eval().requires_grad_(False)
        self.regression = getattr(supernet.model.config, "problem_type", None) == "regression" or (
            getattr(supernet.geometry, "task", None) == "text-classification" and supernet.geometry.num_labels == 1
        )
        # compute_loss ignores num_items_in_batch, so Trainer scales by the accumulation steps itself.
        self.model_accepts_loss_kwargs = False
        self._role = "task"
        self._teacher_logits: tuple[torch.Tensor, ...] | None = None
        self._inplace_logits: tuple[torch.Tensor, ...] | None = None
        self._teacher_hidden: tuple[torch.Tensor, ...] | None = None
        self._inplace_hidden: tuple[torch.Tensor, ...] | None = None
        self._micro = (-1, 0)

    def _next_micro(self) -> int:
        step, micro = self._micro
        micro = micro + 1 if step == self.state.global_step else 0
        self._micro = (self.state.global_step, micro)
        return micro

    def training_step(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: torch.Tensor | None = None
    ) -> torch.Tensor:
        plan = self.sampler.plan(self.state.global_step, self.state.max_steps, self._next_micro())
        self._teacher_logits = self._external_teacher_logits(inputs)
        self._inplace_logits = self._inplace_hidden = None
        total = None
        try:
            for role, subnet in plan:
                self.supernet.set_subnet(subnet)
                self._role = role
                loss = super().training_step(model, inputs, num_items_in_batch)
                total = loss if total is None else total + loss
        finally:
            self.supernet.reset()
            self._role = "task"
            self._teacher_logits = self._inplace_logits = None
            self._teacher_hidden = self._inplace_hidden = None
        return total

    @torch.no_grad()
    def _external_teacher_logits(self, inputs: dict[str, Any]) -> tuple[torch.Tensor, ...] | None:
        if self.teacher is None:
            return None
        prepared = self._prepare_inputs(inputs)
        names = self.objective.input_names or model_input_names(self.teacher)
        inputs = {k: v for k, v in prepared.items() if k in names}
        outputs = self.teacher(**inputs, **({"output_hidden_states": True} if self.kd.needs_hidden_states else {}))
        self._teacher_hidden = layer_outputs_of(outputs)
        return logits_of(outputs)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | None = None,
    ):
        hidden = self.kd.needs_hidden_states and model.training
        outputs = model(**inputs, **({"output_hidden_states": True} if hidden else {}))
        if outputs.loss is None:
            raise EftnasError("labels: the training batch has no labels (or start/end positions)")
        loss = outputs.loss
        if model.training:
            student = logits_of(outputs)
            target = None
            mask = self.objective.positions(inputs)
            if self._role == "student" and self.distill_from == "largest" and self._inplace_logits is not None:
                loss = kd_loss(loss, student, self._inplace_logits, self.kd, self.regression, mask)
                target = self._inplace_hidden
            elif self._teacher_logits is not None:
                loss = kd_loss(loss, student, self._teacher_logits, self.kd, self.regression, mask)
                target = self._teacher_hidden
            layers = layer_outputs_of(outputs) if hidden else None
            if layers is not None and target is not None:
                loss = loss + self._hidden_terms(layers, target, inputs)
            if self._role == "teacher":
                self._inplace_logits = tuple(t.detach() for t in student)
                self._inplace_hidden = tuple(h.detach() for h in layers) if layers is not None else None
        return (loss, outputs) if return_outputs else loss

    def _hidden_terms(
        self, student: tuple[torch.Tensor, ...], target: tuple[torch.Tensor, ...], inputs: dict[str, Any]
    ) -> torch.Tensor:
        """The relational and layer-wise KD terms, each times its weight, against `target`'s layer outputs."""
        kd = self.kd
        total = torch.zeros((), device=student[-1].device)
        if kd.rkd_weight:
            total = total + kd.rkd_weight * rkd_loss(
                student[-1][:, 0], target[-1][:, 0], kd.rkd_distance_weight, kd.rkd_angle_weight
            )
        if kd.hidden_weight:
            mask = inputs.get("attention_mask")
            mask = torch.ones(student[-1].shape[:2], device=total.device) if mask is None else mask
            total = total + kd.hidden_weight * hidden_distill_term(student, target, mask)
        return total
