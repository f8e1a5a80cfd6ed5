"""Search sub-networks of a SearchSpace for the accuracy/cost Pareto front with Optuna samplers.

Algorithms: NSGA-II (default), random search, Klein et al.'s local search (mutate one choice of a
random Pareto member) and MOTPE (multi-objective TPE). Every run seeds the largest, smallest and
middle sub-networks, caches evaluations by SubnetConfig, and can resume from its trial log without
repeating evaluations. Sub-networks over the hard budget are never evaluated for accuracy and never
returned: a proposal over the budget is repaired (one random layer choice at a time steps down to the
next smaller option until it fits) and the repaired sub-network is evaluated instead, so every trial
counts even when a tiny part of the space is feasible.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import IntDistribution
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.search.pareto import ParetoPoint, hypervolume, non_dominated
from eftnas_deploy.search.trial_log import TrialLog, changed_settings

EFTNAS_POPULATION = 40
INFEASIBLE_ACCURACY = -1.0  # told to the sampler for over-budget trials, which are never evaluated
LOCAL_SEARCH_RANDOM_START = 10
MIN_FEASIBLE = 10  # fewer distinct feasible sub-networks than this (or than `evals`) gets a warning
TRIAL_ATTR = "eftnas"  # per-trial record: subnet, feasible, constraint violation


@dataclass(frozen=True)
class SearchConfig:
    """How to search. `population` defaults to EFTNAS' 40, scaled down for small budgets."""

    algorithm: str = "nsga2"
    evals: int = 1000
    population: int | None = None
    seed: int = 0
    max_cost: float | None = None
    storage: str | Path | None = None
    show_progress: bool = True
    # What else the trial log must match on resume (budget, cost model, LUT, space): see search.session.
    identity: dict[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise EftnasError(f"algorithm: {self.algorithm!r} is not one of {tuple(ALGORITHMS)}")
        if self.evals < 1:
            raise EftnasError(f"evals: must be at least 1, got {self.evals}")
        if self.population is not None and self.population < 2:
            raise EftnasError(f"population: must be at least 2, got {self.population}")
        if self.max_cost is not None and self.max_cost <= 0:
            raise EftnasError(f"max_cost: must be positive, got {self.max_cost}")

    @property
    def population_size(self) -> int:
        if self.population is not None:
            return self.population
        return max(4, min(EFTNAS_POPULATION, self.evals // 10))


@dataclass
class SearchResult:
    """Feasible evaluated points, their Pareto front, and how much work this call did."""

    points: list[ParetoPoint]
    front: list[ParetoPoint]
    hypervolume: float
    cost_scale: float
    new_evaluations: int
    trials: int
    history: list[dict[str, float]] = field(default_factory=list)
    feasible_evaluated: int = 0  # distinct feasible sub-networks evaluated (this call and resumed ones)
    repaired: int = 0  # proposals over the budget that were repaired in this call
    warning: str | None = None


BUDGET_CONSTRAINT = "budget"  # cost - max_cost: <= 0 is feasible


def _param_name(dimension: str, layer: int) -> str:
    return f"{dimension}_{layer}"


def _distributions(space: SearchSpace) -> dict[str, IntDistribution]:
    """Each parameter is the index into a layer's (descending) choices: cheap for Optuna, and ordered."""
    return {
        _param_name(name, i): IntDistribution(0, len(choices[i]) - 1)
        for i in range(space.num_layers)
        for name, choices in space.items()
    }


def _encode(subnet: SubnetConfig, space: SearchSpace) -> dict[str, int]:
    return {
        _param_name(name, i): choices[i].index(getattr(subnet, name)[i])
        for name, choices in space.items()
        for i in range(space.num_layers)
    }


def _decode(params: dict[str, Any], space: SearchSpace) -> SubnetConfig:
    return SubnetConfig(
        **{
            name: [choices[i][params[_param_name(name, i)]] for i in range(space.num_layers)]
            for name, choices in space.items()
        }
    )


@dataclass(frozen=True)
class Algorithm:
    """A search algorithm: its Optuna sampler, and optionally its own proposals (enqueued before each ask)."""

    make_sampler: Callable[[SearchConfig, int], optuna.samplers.BaseSampler]
    proposes: bool = False  # True: `_local_proposal` picks the next sub-network (Klein et al.'s local search)


# Constraints reach the samplers through `Trial.set_constraint` (Optuna 5), not a constraints_func.
def _nsga2(config: SearchConfig, seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(population_size=config.population_size, seed=seed)


def _motpe(config: SearchConfig, seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=max(3, min(10, config.evals // 5)))


def _random_sampler(config: SearchConfig, seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


# name -> algorithm, registered once; `SearchConfig`, the CLI choices and the pipeline config check use its keys.
ALGORITHMS: dict[str, Algorithm] = {
    "nsga2": Algorithm(_nsga2),
    "random": Algorithm(_random_sampler),
    "local": Algorithm(_random_sampler, proposes=True),
    "motpe": Algorithm(_motpe),
}


def _make_sampler(config: SearchConfig, seed: int) -> optuna.samplers.BaseSampler:
    return ALGORITHMS[config.algorithm].make_sampler(config, seed)


def _completed(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]


def _feasible_points(trials: list[FrozenTrial]) -> list[ParetoPoint]:
    return [
        ParetoPoint(SubnetConfig.from_dict(t.user_attrs[TRIAL_ATTR]["subnet"]), t.values[0], t.values[1])
        for t in trials
        if t.user_attrs[TRIAL_ATTR]["feasible"]
    ]


class _CachedAccuracy:
    """Accuracy by SubnetConfig, evaluated once; `calls` counts real evaluations."""

    def __init__(self, fn: Callable[[SubnetConfig], float]) -> None:
        self.fn = fn
        self.cache: dict[SubnetConfig, float] = {}
        self.calls = 0

    def __call__(self, subnet: SubnetConfig) -> float:
        if subnet not in self.cache:
            self.calls += 1
            self.cache[subnet] = float(self.fn(subnet))
        return self.cache[subnet]


def _repair(
    params: dict[str, Any], space: SearchSpace, fits: Callable[[SubnetConfig], bool], rng: random.Random
) -> dict[str, int] | None:
    """Step random layer choices down to the next smaller option until the sub-network fits (None: cannot)."""
    params = dict(params)
    limits = _distributions(space)
    while not fits(_decode(params, space)):
        shrinkable = [name for name, dist in limits.items() if params[name] < dist.high]
        if not shrinkable:
            return None
        params[rng.choice(shrinkable)] += 1  # choices are in descending order
    return params


def _local_proposal(
    front: list[ParetoPoint], n_trials: int, space: SearchSpace, rng: random.Random, seen: set[SubnetConfig]
) -> dict[str, int] | None:
    """Mutate one choice of a random Pareto member (Klein et al.); None while still sampling at random."""
    if n_trials < LOCAL_SEARCH_RANDOM_START or not front:
        return None
    mutable = [name for name, dist in _distributions(space).items() if dist.high > 0]
    if not mutable:
        return None
    for _ in range(20):
        params = _encode(rng.choice(front).subnet, space)
        name = rng.choice(mutable)
        params[name] = rng.choice([c for c in range(_distributions(space)[name].high + 1) if c != params[name]])
        if _decode(params, space) not in seen:
            return params
    return params


def _open_study(
    config: SearchConfig, seed: int, distributions: dict[str, IntDistribution]
) -> tuple[optuna.Study, TrialLog | None]:
    """An in-memory study, with the trials of `config.storage` (a TrialLog) replayed into it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=_make_sampler(config, seed), directions=["maximize", "minimize"])
    if config.storage is None:
        return study, None
    log = TrialLog(config.storage)
    saved, records = log.read()
    mine = {"algorithm": config.algorithm, "max_cost": config.max_cost, "params": sorted(distributions)}
    if config.identity is not None:
        mine["identity"] = config.identity
    if saved is None:
        log.start(mine)
    elif saved != mine:
        raise EftnasError(
            f"storage: {config.storage} holds a search with other settings ({changed_settings(saved, mine)}); "
            "its trials cannot be reused: start afresh (--overwrite) or use another directory"
        )
    TrialLog.replay(study, records, distributions)
    return study, log


def run_search(
    space: SearchSpace,
    accuracy_fn: Callable[[SubnetConfig], float],
    cost_fn: Callable[[SubnetConfig], float],
    config: SearchConfig,
    constraint_fn: Callable[[SubnetConfig], float] | None = None,
    cost_scale: float | None = None,
) -> SearchResult:
    """Run (or resume) a search until `config.evals` trials are complete.

    `constraint_fn` (default: `cost_fn`) is what `config.max_cost` bounds. `cost_scale`
    (default: the cost of the largest sub-network) normalises the hypervolume.
    """
    constraint_fn = constraint_fn or cost_fn
    cost_scale = cost_scale or cost_fn(space.largest())
    distributions = _distributions(space)
    done_before = len(TrialLog(config.storage).read()[1]) if config.storage is not None else 0
    study, log = _open_study(config, config.seed + done_before, distributions)
    accuracy = _CachedAccuracy(accuracy_fn)
    for trial in _completed(study):
        record = trial.user_attrs[TRIAL_ATTR]
        if record["feasible"]:
            accuracy.cache[SubnetConfig.from_dict(record["subnet"])] = trial.values[0]
    if not study.trials:
        for seed_subnet in dict.fromkeys([space.largest(), space.smallest(), space.middle()]):
            study.enqueue_trial(_encode(seed_subnet, space))
    rng = random.Random(config.seed * 7919 + done_before)
    points = _feasible_points(_completed(study))
    front = non_dominated(points)
    n_trials = done_before
    history: list[dict[str, float]] = []
    bar = tqdm(
        total=config.evals, initial=done_before, desc=f"search[{config.algorithm}]", disable=not config.show_progress
    )

    def violation_of(subnet: SubnetConfig) -> float:
        return float(constraint_fn(subnet) - config.max_cost) if config.max_cost is not None else -1.0

    repaired = 0
    for _ in range(max(0, config.evals - done_before)):
        if ALGORITHMS[config.algorithm].proposes:
            proposal = _local_proposal(front, n_trials, space, rng, set(accuracy.cache))
            if proposal is not None:
                study.enqueue_trial(proposal)
        trial = study.ask(distributions)
        subnet = _decode(trial.params, space)
        violation = violation_of(subnet)
        if violation > 0:
            fixed = _repair(trial.params, space, lambda s: violation_of(s) <= 0, rng)
            if fixed is not None:  # the over-budget proposal is dropped (not logged) and its repair asked instead
                study.tell(trial, state=TrialState.FAIL)
                study.enqueue_trial(fixed)
                trial = study.ask(distributions)
                subnet = _decode(trial.params, space)
                violation = violation_of(subnet)
                repaired += 1
        cost = float(cost_fn(subnet))
        feasible = violation <= 0
        value = accuracy(subnet) if feasible else INFEASIBLE_ACCURACY
        # One attribute write per trial: each write is a storage transaction.
        trial.set_user_attr(TRIAL_ATTR, {"subnet": subnet.to_dict(), "feasible": feasible, "constraint": [violation]})
        if config.max_cost is not None:
            trial.set_constraint(BUDGET_CONSTRAINT, violation)
        frozen = study.tell(trial, [value, cost])
        if log is not None:
            log.append(frozen)
        n_trials += 1
        if feasible:
            points.append(ParetoPoint(subnet, value, cost))
            front = non_dominated([*front, points[-1]])
        hv = hypervolume(front, cost_scale)
        best = max((p.accuracy for p in front), default=float("nan"))
        history.append({"trial": trial.number, "hypervolume": hv, "best_accuracy": best})
        bar.set_postfix(best=f"{best:.4f}", hv=f"{hv:.4f}")
        bar.update()
    bar.close()
    feasible_evaluated = len(accuracy.cache)
    warning = None
    if feasible_evaluated < min(MIN_FEASIBLE, config.evals):
        warning = (
            f"only {feasible_evaluated} distinct feasible sub-network(s) evaluated in {n_trials} trials: the budget "
            "leaves little of the space; consider a looser budget or a space with smaller choices"
        )
        warnings.warn(warning, stacklevel=2)
    return SearchResult(
        points=points,
        front=front,
        hypervolume=hypervolume(front, cost_scale),
        cost_scale=cost_scale,
        new_evaluations=accuracy.calls,
        trials=n_trials,
        history=history,
        feasible_evaluated=feasible_evaluated,
        repaired=repaired,
        warning=warning,
    )
