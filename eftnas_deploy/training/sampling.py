"""Which sub-networks one training step runs, per strategy; deterministic in (seed, step)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig

STRATEGIES = ("standard", "random", "random-linear", "sandwich", "kd", "full")
DISTILL_SOURCES = ("teacher", "largest")  # whom the "student" sub-networks follow when a teacher is given

# Roles: "task" trains on the task loss (or the external teacher); "teacher" does the same and its detached
# outputs become the in-place teacher of the following "student" sub-networks of the step.
Plan = list[tuple[str, SubnetConfig]]


@dataclass(frozen=True)
class SubnetSampler:
    """Plans the sub-networks of each step for one of `STRATEGIES` over a search space.

    `num_random` is k, the number of random sub-networks per step. The random draws depend only on
    (seed, global step, micro-batch), so a resumed run samples exactly what an uninterrupted one would.
    """

    space: SearchSpace
    strategy: str = "sandwich"
    num_random: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise EftnasError(f"strategy: unknown strategy {self.strategy!r} (expected one of {STRATEGIES})")
        if self.num_random < 0 or (self.num_random == 0 and self.strategy in ("random", "random-linear", "kd")):
            raise EftnasError(f"num_random: {self.num_random} is not valid for strategy {self.strategy}")

    def plan(self, step: int, max_steps: int, micro: int = 0) -> Plan:
        rng = random.Random(f"{self.seed}:{step}:{micro}")
        largest = self.space.largest()
        randoms = [self.space.sample(rng) for _ in range(self.num_random)]
        if self.strategy == "standard":
            return [("task", largest)]
        if self.strategy == "random":
            return [("task", s) for s in randoms]
        if self.strategy == "random-linear":
            p = min(1.0, step / max(1, max_steps))
            return [("task", s if rng.random() < p else largest) for s in randoms]
        if self.strategy == "sandwich":
            return [("task", largest), ("task", self.space.smallest())] + [("task", s) for s in randoms]
        if self.strategy == "kd":
            return [("teacher", largest)] + [("student", s) for s in randoms]
        return [("teacher", largest), ("student", self.space.smallest())] + [("student", s) for s in randoms]
