import json
import random

import pytest

from eftnas_deploy import ModelGeometry, SearchSpace, SubnetConfig, SubnetConfigError
from eftnas_deploy.core.errors import SearchSpaceError

GEOMETRY = ModelGeometry(
    model_type="bert", num_layers=4, num_heads=12, head_dim=64, hidden_size=768,
    intermediate_size=3072, vocab_size=30522, max_position_embeddings=512, type_vocab_size=2,
)  # fmt: skip


def test_json_round_trip_and_file(tmp_path):
    subnet = SubnetConfig(heads=[12, 8, 0, 3], ffn=[3072, 1024, 512, 0])
    assert SubnetConfig.from_json(subnet.to_json()) == subnet
    subnet.save(tmp_path / "s.json")
    assert SubnetConfig.load(tmp_path / "s.json") == subnet
    assert json.loads(subnet.to_json())["heads"] == [12, 8, 0, 3]


def test_hashable_comparable_and_frozen():
    a = SubnetConfig(heads=[1, 2], ffn=[3, 4])
    b = SubnetConfig(heads=(1, 2), ffn=(3, 4))
    c = SubnetConfig(heads=[2, 2], ffn=[3, 4])
    assert a == b and hash(a) == hash(b)
    assert len({a, b, c}) == 2
    assert sorted([c, a]) == [a, c]
    with pytest.raises(AttributeError):
        a.heads = (0, 0)  # type: ignore[misc]


def test_validate_names_layer_and_field():
    with pytest.raises(SubnetConfigError, match="layer 3: 14 heads requested, model has 12"):
        SubnetConfig(heads=[12, 12, 12, 14], ffn=[3072] * 4).validate(GEOMETRY)
    with pytest.raises(SubnetConfigError, match="layer 1: FFN width 4000 requested, model has 3072"):
        SubnetConfig(heads=[12] * 4, ffn=[3072, 4000, 1, 1]).validate(GEOMETRY)
    with pytest.raises(SubnetConfigError, match="3 layers given, model has 4"):
        SubnetConfig(heads=[1, 1, 1], ffn=[1, 1, 1]).validate(GEOMETRY)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(heads=[1, 2], ffn=[3]), "length mismatch"),
        (dict(heads=[1, -2], ffn=[3, 3]), "layer 1: heads must be a non-negative integer"),
        (dict(heads=[1, 2.5], ffn=[3, 3]), "layer 1: heads"),
        (dict(heads=[1, 2], ffn=[3, "x"]), "layer 1: ffn"),
        (dict(heads=[], ffn=[]), "at least one layer"),
    ],
)
def test_malformed_configs(kwargs, message):
    with pytest.raises(SubnetConfigError, match=message):
        SubnetConfig(**kwargs)


def test_from_dict_refuses_missing_and_unknown_fields():
    with pytest.raises(SubnetConfigError, match="ffn: missing"):
        SubnetConfig.from_dict({"heads": [1]})
    with pytest.raises(SubnetConfigError, match="unknown field"):
        SubnetConfig.from_dict({"heads": [1], "ffn": [1], "width": 3})
    with pytest.raises(SubnetConfigError, match="not valid JSON"):
        SubnetConfig.from_json("{heads")


def test_search_space_validation_and_sampling(tmp_path):
    space = SearchSpace(heads=[[12, 6], [12, 0], [12], [8, 4]], ffn=[[3072], [3072, 0], [1024, 3072], [512]])
    assert space.heads[2] == (12,) and space.ffn[2] == (3072, 1024)
    assert space.largest() == SubnetConfig(heads=[12, 12, 12, 8], ffn=[3072, 3072, 3072, 512])
    assert space.smallest() == SubnetConfig(heads=[6, 0, 12, 4], ffn=[3072, 0, 1024, 512])
    rng = random.Random(0)
    for _ in range(20):
        assert space.sample(rng) in space
    assert space.size() == 2 * 2 * 1 * 2 * 1 * 2 * 2 * 1
    space.validate(GEOMETRY)
    space.save(tmp_path / "space.json")
    assert SearchSpace.load(tmp_path / "space.json") == space
    with pytest.raises(SubnetConfigError, match="layer 0: 7 heads is not a search-space choice"):
        space.check(SubnetConfig(heads=[7, 12, 12, 8], ffn=[3072, 3072, 3072, 512]))
    with pytest.raises(SearchSpaceError, match="layer 0: 16 heads allowed, model has 12"):
        SearchSpace(heads=[[16]] * 4, ffn=[[1]] * 4).validate(GEOMETRY)
    with pytest.raises(SearchSpaceError, match="empty"):
        SearchSpace(heads=[], ffn=[])
    with pytest.raises(SearchSpaceError, match="layer 1: ffn has no choices"):
        SearchSpace(heads=[[1], [1]], ffn=[[1], []])
