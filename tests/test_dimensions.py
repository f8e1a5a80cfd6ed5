"""The elastic-dimension registry: a new dimension is one registry entry, and everything keyed by it follows."""

import json
import random

import pytest

from eftnas_deploy.core import dimensions
from eftnas_deploy.core.dimensions import Dimension, dimension_names
from eftnas_deploy.core.errors import EftnasError, SubnetConfigError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.space import SearchSpace, sample_across_cost
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.metrics import count_macs, count_params
from eftnas_deploy.search.searcher import _decode, _distributions, _encode

GEOMETRY = ModelGeometry(
    model_type="bert", num_layers=2, num_heads=4, head_dim=8, hidden_size=32,
    intermediate_size=64, vocab_size=100, max_position_embeddings=64, type_vocab_size=2,
)  # fmt: skip

RANK = Dimension(
    "toy_rank",
    "rank {}",
    "num_heads",
    block=None,  # free at inference, like a merged adapter
    macs=lambda value, geometry, seq_len: 0,
    params=lambda value, geometry: 2 * geometry.hidden_size * value,
    required=False,
)


@pytest.fixture
def toy_rank(monkeypatch):
    monkeypatch.setitem(dimensions._REGISTRY, RANK.name, RANK)
    yield RANK


def test_heads_and_ffn_are_registered_in_order():
    assert dimension_names()[:2] == ("heads", "ffn")
    assert dimensions.dimension("heads").block == "attention"
    assert dimensions.dimension("ffn").max_value(GEOMETRY) == 64
    with pytest.raises(EftnasError, match="dimension: 'nope' is not one of"):
        dimensions.dimension("nope")


def test_existing_json_keeps_loading_and_unknown_dimensions_are_refused():
    subnet = SubnetConfig.from_json('{"format_version": 1, "heads": [4, 0], "ffn": [64, 8]}')
    assert subnet == SubnetConfig([4, 0], [64, 8]) and subnet.dimensions == ("heads", "ffn")
    with pytest.raises(SubnetConfigError, match="unknown field"):
        SubnetConfig.from_dict({"heads": [1], "ffn": [1], "toy_rank": [1]})


def test_a_new_dimension_flows_through_subnet_space_costs_and_search(toy_rank):
    subnet = SubnetConfig(heads=[4, 2], ffn=[64, 0], toy_rank=[3, 1])
    assert subnet.toy_rank == (3, 1) and subnet.dimensions == ("heads", "ffn", "toy_rank")
    assert SubnetConfig.from_json(subnet.to_json()) == subnet
    assert json.loads(subnet.to_json())["toy_rank"] == [3, 1]
    assert subnet != SubnetConfig(heads=[4, 2], ffn=[64, 0])
    with pytest.raises(SubnetConfigError, match="layer 0: rank 5 requested, model has 4"):
        subnet.replace(toy_rank=[5, 1]).validate(GEOMETRY)

    base = SubnetConfig(heads=[4, 2], ffn=[64, 0])
    assert count_macs(subnet, GEOMETRY, seq_len=8) == count_macs(base, GEOMETRY, seq_len=8)
    assert count_params(subnet, GEOMETRY) == count_params(base, GEOMETRY) + 2 * 32 * (3 + 1)

    space = SearchSpace(heads=[[4, 2], [2]], ffn=[[64], [64, 0]], toy_rank=[[3, 1], [1]])
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space
    assert space.size() == 2 * 1 * 1 * 2 * 2 * 1
    assert space.largest() == SubnetConfig(heads=[4, 2], ffn=[64, 64], toy_rank=[3, 1])
    assert space.check(subnet) is subnet
    rng = random.Random(0)
    assert all(space.sample(rng) in space for _ in range(20))
    assert len(sample_across_cost(space, 4, seed=0)) == 4
    with pytest.raises(SubnetConfigError, match="layer 1: rank 3 is not a search-space choice"):
        space.check(subnet.replace(toy_rank=[3, 3]))

    assert set(_distributions(space)) == {f"{d}_{i}" for d in ("heads", "ffn", "toy_rank") for i in range(2)}
    assert _decode(_encode(subnet, space), space) == subnet


def test_optional_dimension_is_left_out_when_not_given(toy_rank):
    subnet = SubnetConfig([4, 2], [64, 0])
    assert subnet.dimensions == ("heads", "ffn")
    with pytest.raises(AttributeError, match="no dimension 'toy_rank'"):
        _ = subnet.toy_rank
    with pytest.raises(SubnetConfigError, match="states dimensions"):
        SearchSpace(heads=[[4], [2]], ffn=[[64], [0]], toy_rank=[[1], [1]]).check(subnet)
