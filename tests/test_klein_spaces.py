import random

import pytest
import torch

from eftnas_deploy import SearchSpace, SubnetConfig, SuperNetwork, count_macs, slice_subnet
from eftnas_deploy.core.errors import SearchSpaceError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.families.models import encoder_layers
from eftnas_deploy.space.klein import LargeSpace, LayerSpace, SmallSpace, UnitSelection, klein_space
from tests.conftest import outputs_of, random_inputs, tiny_model


@pytest.fixture
def geometry():
    return ModelGeometry.from_config(tiny_model().config)


@pytest.mark.parametrize("name", ["small", "layer", "medium"])
def test_prefix_spaces_expose_the_searcher_interface(name, geometry):
    space = klein_space(name, geometry)
    cost = [count_macs(space.smallest(), geometry), count_macs(space.middle(), geometry)]
    cost.append(count_macs(space.largest(), geometry))
    assert cost == sorted(cost) and cost[0] < cost[-1]
    assert space.largest() == SubnetConfig.full(geometry)
    rng = random.Random(0)
    for _ in range(30):
        subnet = space.sample(rng).validate(geometry)
        assert subnet in space
        for layer in range(geometry.num_layers):
            heads, ffn = space.layer_choices(layer)
            assert subnet.heads[layer] in heads and subnet.ffn[layer] in ffn


def test_small_space_is_uniform_and_layer_space_keeps_whole_layers(geometry):
    rng = random.Random(1)
    for _ in range(20):
        s = SmallSpace.default(geometry).sample(rng)
        kept = [(h, f) for h, f in zip(s.heads, s.ffn) if (h, f) != (0, 0)]
        assert len(set(kept)) == 1 and s.heads[: len(kept)] == tuple(h for h, _ in kept)
        layer = LayerSpace(geometry).sample(rng)
        assert all((h, f) in {(4, 128), (0, 0)} for h, f in zip(layer.heads, layer.ffn))
        assert any(h for h in layer.heads)
    assert isinstance(klein_space("medium", geometry), SearchSpace)
    assert 0 in klein_space("medium", geometry).heads[0]
    with pytest.raises(SearchSpaceError, match="not one of"):
        klein_space("huge", geometry)
    with pytest.raises(SearchSpaceError, match="heads: no choices"):
        SmallSpace(geometry, layers=(3,), heads=(), ffn=(128,))


def test_large_space_index_selection_slices_exactly():
    model = tiny_model()
    inputs = random_inputs()
    space = LargeSpace(SuperNetwork(tiny_model()).geometry)
    selection = UnitSelection(heads=[[1, 3], [0], [2, 1, 3]], ffn=[[5, 0, 77, 100], list(range(0, 128, 3)), [127]])
    assert selection in space
    # Reference: the original model with the dropped heads' and neurons' output columns zeroed.
    masked = tiny_model()
    with torch.no_grad():
        for layer, heads, ffn in zip(encoder_layers(masked), selection.heads, selection.ffn):
            head_keep = torch.zeros(4, 16)
            head_keep[list(heads)] = 1
            layer.attention.output.dense.weight.mul_(head_keep.reshape(1, -1))
            ffn_keep = torch.zeros(128)
            ffn_keep[list(ffn)] = 1
            layer.output.dense.weight.mul_(ffn_keep)
    clone, subnet = selection.materialize(model)
    assert subnet == SubnetConfig([2, 1, 3], [4, 43, 1])
    dense = slice_subnet(clone, subnet)
    torch.testing.assert_close(outputs_of(dense, inputs), outputs_of(masked, inputs), atol=1e-5, rtol=0)
    torch.testing.assert_close(outputs_of(model, inputs), outputs_of(tiny_model(), inputs), atol=0, rtol=0)  # untouched
    rng = random.Random(0)
    sample = space.sample(rng)
    assert sample in space and 0 < sum(sample.counts().ffn) < 3 * 128
    assert space.smallest().counts() == SubnetConfig([0] * 3, [0] * 3)
    assert space.largest().counts() == SubnetConfig.full(space.geometry)
    assert len(space.layer_choices(0)[1]) == 128
    with pytest.raises(SearchSpaceError, match="layer 0: head indices"):
        UnitSelection(heads=[[4], [], []], ffn=[[], [], []]).validate(space.geometry)
