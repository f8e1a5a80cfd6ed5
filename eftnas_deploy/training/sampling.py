"""Which sub-networks one training step runs, per strategy; deterministic in (seed, step)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.training.growth import grown_layers, growth_space

DISTILL_SOURCES = ("teacher", "largest")  # whom the "student" sub-networks follow when a teacher is given

# Roles: "task" trains on the task loss (or the external teacher); "teacher" does the same and its detached
# outputs become the in-place teacher of the following "student" sub-networks of the step.
Plan = list[tuple[str, SubnetConfig]]
# A strategy plans one step from (space, largest, k random draws, rng, step, max_steps).
Strategy = Callable[[SearchSpace, SubnetConfig, list[SubnetConfig], random.Random, int, int], Plan]

STRATEGIES: dict[str, Strategy] = {}  # name -> planner; registered once below, in the order shown to users
NEEDS_RANDOM = {"random", "random-linear", "kd"}  # strategies that are empty without random sub-networks


def register_strategy(name: str) -> Callable[[Strategy], Strategy]:
    def add(fn: Strategy) -> Strategy:
        if name in STRATEGIES:
            raise EftnasError(f"strategy: {name!r} is registered twice")
        STRATEGIES[name] = fn
        return fn

    return add


@register_strategy("standard")
def _standard(space, largest, randoms, rng, step, max_steps) -> Plan:
    return [("task", largest)]


@register_strategy("random")
def _random(space, largest, randoms, rng, step, max_steps) -> Plan:
    return [("task", s) for s in randoms]


@register_strategy("random-linear")
def _random_linear(space, largest, randoms, rng, step, max_steps) -> Plan:
    p = min(1.0, step / max(1, max_steps))
    return [("task", s if rng.random() < p else largest) for s in randoms]


@register_strategy("sandwich")
def _sandwich(space, largest, randoms, rng, step, max_steps) -> Plan:
    return [("task", largest), ("task", space.smallest())] + [("task", s) for s in randoms]


@register_strategy("kd")
def _kd(space, largest, randoms, rng, step, max_steps) -> Plan:
    return [("teacher", largest)] + [("student", s) for s in randoms]


@register_strategy("full")
def _full(space, largest, randoms, rng, step, max_steps) -> Plan:
    return [("teacher", largest), ("student", space.smallest())] + [("student", s) for s in randoms]


@dataclass(frozen=True)
class SubnetSampler:
    """Plans the sub-networks of each step for one of `STRATEGIES` over a search space.

    `num_random` is k, the number of random sub-networks per step. The random draws depend only on
    (seed, global step, micro-batch), so a resumed run samples exactly what an uninterrupted one would.
    `growth` (a layer ranking) trains the space progressively in `growth_stages` stages (`training.growth`).
    `fits` (a budget predicate) keeps training where the search will look: the upper end of the sandwich
    and every random draw are shrunk (random layer choices stepped down) until they fit the budget, so the
    steps train sub-networks the search can pick instead of ones it will reject.
    """

    space: SearchSpace
    strategy: str = "sandwich"
    num_random: int = 1
    seed: int = 0
    growth: tuple[int, ...] = ()
    growth_stages: int = 1
    fits: Callable[[SubnetConfig], bool] | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise EftnasError(f"strategy: unknown strategy {self.strategy!r} (expected one of {tuple(STRATEGIES)})")
        if self.num_random < 0 or (self.num_random == 0 and self.strategy in NEEDS_RANDOM):
            raise EftnasError(f"num_random: {self.num_random} is not valid for strategy {self.strategy}")
        if self.growth and (sorted(self.growth) != list(range(self.space.num_layers)) or self.growth_stages < 1):
            raise EftnasError("growth: needs a ranking of every layer and at least one stage")
        if self.fits is not None and not self.fits(self.space.smallest()):
            raise EftnasError("sampling: the budget is below the smallest sub-network of the space; nothing fits")

    def space_at(self, step: int, max_steps: int) -> SearchSpace:
        """The space trained at `step`: all of it, or its grown part under progressive growth."""
        if not self.growth:
            return self.space
        grown = grown_layers(step, max_steps, self.space.num_layers, self.growth_stages)
        return growth_space(self.space, self.growth, grown)

    def plan(self, step: int, max_steps: int, micro: int = 0) -> Plan:
        rng = random.Random(f"{self.seed}:{step}:{micro}")
        space = self.space_at(step, max_steps)
        largest = space.largest()
        randoms = [space.sample(rng) for _ in range(self.num_random)]
        if self.fits is not None:
            largest, *randoms = (self._fitted(space, s, rng) for s in (largest, *randoms))
        return STRATEGIES[self.strategy](space, largest, randoms, rng, step, max_steps)

    def _fitted(self, space: SearchSpace, subnet: SubnetConfig, rng: random.Random) -> SubnetConfig:
        # a grown (progressive) space may not reach down to the budget: fall back to the full space's options
        return space.shrink_to_fit(subnet, self.fits, rng) or self.space.shrink_to_fit(subnet, self.fits, rng)
