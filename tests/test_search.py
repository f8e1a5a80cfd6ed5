"""Searchers on a real tiny super-network: accuracy = agreement with the full network on a fixed batch."""

from __future__ import annotations

import pytest
import torch

from eftnas_deploy import EftnasError, SearchSpace, SubnetConfig, SuperNetwork, count_macs
from eftnas_deploy.search import (
    ALGORITHMS,
    ParetoPoint,
    SearchConfig,
    hypervolume,
    non_dominated,
    run_search,
    select_cheapest_within_delta,
    select_most_accurate,
)
from tests.conftest import random_inputs, tiny_model


@pytest.fixture(scope="module")
def problem():
    supernet = SuperNetwork(tiny_model(num_labels=4))
    inputs = random_inputs(batch=64, seq=12, seed=5)
    with torch.no_grad():
        reference = supernet(**inputs).logits.argmax(-1)

    def agreement(subnet: SubnetConfig) -> float:
        with supernet.activate(subnet), torch.no_grad():
            return (supernet(**inputs).logits.argmax(-1) == reference).float().mean().item()

    space = SearchSpace(heads=[[4, 2, 1, 0]] * 3, ffn=[[128, 64, 32, 0]] * 3)

    def macs(subnet: SubnetConfig) -> float:
        return float(count_macs(subnet, supernet.geometry, seq_len=12))

    return space, agreement, macs


def assert_non_dominated(points: list[ParetoPoint]) -> None:
    for a in points:
        for b in points:
            assert not (a.accuracy >= b.accuracy and a.cost <= b.cost and (a.accuracy, a.cost) != (b.accuracy, b.cost))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_returns_a_non_dominated_set_within_budget(problem, algorithm):
    space, agreement, macs = problem
    budget = 0.6 * macs(space.largest())
    result = run_search(
        space, agreement, macs, SearchConfig(algorithm=algorithm, evals=30, max_cost=budget, show_progress=False)
    )
    assert result.trials == 30
    assert result.front and all(p.cost <= budget for p in result.points)
    assert_non_dominated(result.front)
    assert result.hypervolume > 0
    assert space.smallest() in {p.subnet for p in result.points}  # seeded extremes
    assert all(p.subnet in space for p in result.points)


def test_resume_does_not_repeat_evaluations(problem, tmp_path):
    space, agreement, macs = problem
    calls: list[SubnetConfig] = []

    def counted(subnet: SubnetConfig) -> float:
        calls.append(subnet)
        return agreement(subnet)

    storage = tmp_path / "search_trials.jsonl"
    first = run_search(space, counted, macs, SearchConfig(evals=12, storage=storage, show_progress=False))
    assert first.trials == 12 and first.new_evaluations == len(calls)
    before = list(calls)
    second = run_search(space, counted, macs, SearchConfig(evals=25, storage=storage, show_progress=False))
    assert second.trials == 25
    assert len(set(calls)) == len(calls)  # nothing evaluated twice, across both runs
    assert not set(calls[len(before) :]) & set(before)
    again = run_search(space, counted, macs, SearchConfig(evals=25, storage=storage, show_progress=False))
    assert again.new_evaluations == 0 and again.trials == 25


def test_storage_of_another_search_is_refused(problem, tmp_path):
    space, agreement, macs = problem
    storage = tmp_path / "search_trials.jsonl"
    run_search(space, agreement, macs, SearchConfig(evals=3, storage=storage, show_progress=False))
    with pytest.raises(EftnasError, match="storage"):
        run_search(space, agreement, macs, SearchConfig(algorithm="random", evals=3, storage=storage))


def test_selection_rules_on_a_hand_built_front():
    def point(acc: float, cost: float, tag: int) -> ParetoPoint:
        return ParetoPoint(SubnetConfig([tag], [tag]), acc, cost)

    points = [point(0.70, 5, 1), point(0.80, 10, 2), point(0.85, 20, 3), point(0.86, 40, 4), point(0.60, 30, 5)]
    assert [p.subnet.heads[0] for p in non_dominated(points)] == [1, 2, 3, 4]
    assert select_most_accurate(points, max_cost=25).accuracy == 0.85
    assert select_most_accurate(points).accuracy == 0.86
    assert select_cheapest_within_delta(points, reference_accuracy=0.86, delta=0.01).cost == 20
    assert select_cheapest_within_delta(points, reference_accuracy=0.86, delta=0.07).cost == 10
    with pytest.raises(EftnasError, match="max_cost"):
        select_most_accurate(points, max_cost=1)
    with pytest.raises(EftnasError, match="delta"):
        select_cheapest_within_delta(points, reference_accuracy=0.99, delta=0.01)


def test_hypervolume_grows_with_a_dominating_point():
    a = [ParetoPoint(SubnetConfig([1], [1]), 0.8, 50.0)]
    b = [*a, ParetoPoint(SubnetConfig([2], [2]), 0.9, 40.0)]
    assert hypervolume(a, cost_scale=100) == pytest.approx(0.8 * (1.1 - 0.5))
    assert hypervolume(b, cost_scale=100) > hypervolume(a, cost_scale=100)


def test_bad_search_config_names_the_field():
    with pytest.raises(EftnasError, match="algorithm"):
        SearchConfig(algorithm="bayes")
    with pytest.raises(EftnasError, match="evals"):
        SearchConfig(evals=0)


def test_outputs_are_written(problem, tmp_path):
    import json

    from eftnas_deploy.search.outputs import plot_pareto, write_pareto_json

    space, agreement, macs = problem
    result = run_search(space, agreement, macs, SearchConfig(algorithm="random", evals=10, show_progress=False))
    geometry = SuperNetwork(tiny_model()).geometry
    write_pareto_json(
        tmp_path / "pareto.json", result.front, geometry, objective="macs", seq_len=12, batch=1,
        hypervolume=result.hypervolume, cost_scale=result.cost_scale, latency_ms=lambda s: 1.0,
    )  # fmt: skip
    data = json.loads((tmp_path / "pareto.json").read_text())
    assert len(data["points"]) == len(result.front)
    first = data["points"][0]
    assert {"subnet", "accuracy", "macs", "params", "predicted_latency_ms"} <= set(first)
    assert first["macs"] == count_macs(SubnetConfig.from_dict(first["subnet"]), geometry, seq_len=12)
    plot_pareto(tmp_path / "pareto.png", result.front, result.points, budget=result.cost_scale / 2)
    assert (tmp_path / "pareto.png").stat().st_size > 1000


def test_a_torn_last_log_line_is_redone_not_fatal(problem, tmp_path):
    space, agreement, macs = problem
    storage = tmp_path / "search_trials.jsonl"
    run_search(space, agreement, macs, SearchConfig(evals=6, storage=storage, show_progress=False))
    lines = storage.read_text().splitlines()
    storage.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:25])  # killed mid-write
    result = run_search(space, agreement, macs, SearchConfig(evals=8, storage=storage, show_progress=False))
    assert result.trials == 8
    again = run_search(space, agreement, macs, SearchConfig(evals=8, storage=storage, show_progress=False))
    assert again.trials == 8 and again.new_evaluations == 0
    storage.write_text("garbage\n" + storage.read_text())
    with pytest.raises(EftnasError, match="corrupt"):
        run_search(space, agreement, macs, SearchConfig(evals=9, storage=storage, show_progress=False))


def _cost_problem():
    """A 6-layer space (6^12 sub-networks) with a pure cost model: accuracy grows with the units kept."""
    space = SearchSpace(heads=[[12, 10, 8, 6, 3, 0]] * 6, ffn=[[1536, 1024, 768, 512, 256, 0]] * 6)

    def cost(subnet: SubnetConfig) -> float:
        return float(sum(128 * h + f for h, f in zip(subnet.heads, subnet.ffn)))

    def accuracy(subnet: SubnetConfig) -> float:
        return cost(subnet) / cost(space.largest()) + 0.001 * sum(subnet.heads)

    return space, cost, accuracy


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_budget_leaving_under_1pct_feasible_still_finds_non_corner_subnets(algorithm):
    import random

    space, cost, accuracy = _cost_problem()
    rng = random.Random(0)
    costs = sorted(cost(space.sample(rng)) for _ in range(20000))
    budget = costs[int(0.005 * len(costs))]  # 0.5% of random draws fit
    config = SearchConfig(algorithm=algorithm, evals=40, seed=1, max_cost=budget, show_progress=False)
    result = run_search(space, accuracy, cost, config)
    assert result.warning is None
    assert result.feasible_evaluated >= 10
    assert all(p.cost <= budget for p in result.points)
    best = select_most_accurate(result.front)
    assert best.subnet != space.smallest()
    assert cost(best.subnet) > 0.8 * budget  # close to the budget, not a corner far below it


def test_a_budget_only_the_smallest_corner_fits_warns():
    space, cost, accuracy = _cost_problem()
    budget = cost(space.smallest()) + 100  # only sub-networks without any head and FFN below 100 units fit
    config = SearchConfig(algorithm="nsga2", evals=30, seed=0, max_cost=budget, show_progress=False)
    with pytest.warns(UserWarning, match="feasible sub-network"):
        result = run_search(space, accuracy, cost, config)
    assert result.feasible_evaluated < 10
    assert all(p.cost <= budget for p in result.points)
