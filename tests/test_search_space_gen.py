import random

import pytest
import torch

from eftnas_deploy import SubnetConfig, count_macs, count_params
from eftnas_deploy.core.errors import SearchSpaceError
from eftnas_deploy.importance.scores import magnitude_importance, reorder_by_importance
from eftnas_deploy.space.generate import evenly_spaced_targets, generate_search_space, macs_cost
from tests.conftest import tiny_model


def _reordered_scores(seed=0, **overrides):
    model = tiny_model(seed=seed, **overrides)
    # Random but fixed per-unit scales so units differ in importance.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            layer.intermediate.dense.weight.mul_(torch.rand(layer.intermediate.dense.out_features, 1, generator=g) * 2)
    scores = magnitude_importance(model)
    return model, reorder_by_importance(model, scores)


def test_space_hits_every_mac_target_within_tolerance():
    _, scores = _reordered_scores()
    geometry = scores.geometry
    full = count_macs(SubnetConfig.full(geometry), geometry, seq_len=128)
    targets = evenly_spaced_targets(0.3 * full, 0.9 * full, 5)
    space = generate_search_space(scores, targets, tolerance=0.02)
    assert len(space.metadata["targets"]) == 5
    for entry, target in zip(space.metadata["targets"], targets):
        subnet = SubnetConfig.from_dict(entry["subnet"])
        assert subnet in space
        assert abs(count_macs(subnet, geometry, seq_len=128) - target) <= 0.02 * target
    for layer in range(geometry.num_layers):
        heads, ffn = space.layer_choices(layer)
        assert heads[0] == geometry.num_heads and ffn[0] == geometry.intermediate_size
        assert list(heads) == sorted(heads, reverse=True)
    assert space.largest() == SubnetConfig.full(geometry)
    assert space.metadata["model_fingerprint"] == scores.fingerprint


def test_ffn_rounding_and_block_skipping():
    _, scores = _reordered_scores(seed=1)
    geometry = scores.geometry
    low = count_macs(SubnetConfig([0, 0, 0], [0, 0, 0]), geometry)
    full = count_macs(SubnetConfig.full(geometry), geometry)
    space = generate_search_space(scores, [low + 0.05 * (full - low), 0.6 * full], ffn_multiple=8, tolerance=0.1)
    assert all(w % 8 == 0 for choices in space.ffn for w in choices)
    assert any(0 in choices for choices in space.heads + space.ffn)  # the smallest target must skip blocks


def test_cost_function_is_pluggable():
    _, scores = _reordered_scores()
    geometry = scores.geometry

    def params(subnet):
        return float(count_params(subnet, geometry))

    target = 0.8 * params(SubnetConfig.full(geometry))
    space = generate_search_space(scores, [target], cost_fn=params)
    subnet = SubnetConfig.from_dict(space.metadata["targets"][0]["subnet"])
    assert abs(params(subnet) - target) <= 0.02 * target
    assert space.metadata["cost"] == "params"


def test_bad_inputs_are_refused_clearly():
    _, scores = _reordered_scores()
    geometry = scores.geometry
    cost = macs_cost(geometry)
    full = cost(SubnetConfig.full(geometry))
    with pytest.raises(SearchSpaceError, match=r"targets\[1\]: cost .* is outside"):
        generate_search_space(scores, [0.5 * full, 1.5 * full])
    with pytest.raises(SearchSpaceError, match="at least one cost target"):
        generate_search_space(scores, [])
    with pytest.raises(SearchSpaceError, match="num_targets"):
        evenly_spaced_targets(1, 2, 0)
    with pytest.raises(SearchSpaceError, match="ffn_multiple"):
        generate_search_space(scores, [0.5 * full], ffn_multiple=0)
    unsorted = magnitude_importance(tiny_model(seed=5))
    unsorted.heads[:, 0] = -1.0
    with pytest.raises(SearchSpaceError, match="not in descending order"):
        generate_search_space(unsorted, [0.5 * full])


def test_sampled_subnets_of_a_generated_space_are_valid():
    _, scores = _reordered_scores()
    full = macs_cost(scores.geometry)(SubnetConfig.full(scores.geometry))
    space = generate_search_space(scores, evenly_spaced_targets(0.4 * full, 0.8 * full, 3))
    rng = random.Random(0)
    for _ in range(20):
        space.check(space.sample(rng).validate(scores.geometry))
