"""Klein et al.'s medium space as a selectable space kind, and UnitSelection's exact slicing.

(The small, layer and large spaces were removed: they are not per-layer heads/FFN choices; see space/klein.py.)
"""

import random

import pytest
import torch

from eftnas_deploy import SearchSpace, SubnetConfig, SuperNetwork, count_macs, slice_subnet
from eftnas_deploy.core.errors import EftnasError, SearchSpaceError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.families.models import encoder_layers
from eftnas_deploy.importance.scores import magnitude_importance, reorder_by_importance
from eftnas_deploy.space.kinds import SPACE_KINDS, SpaceRequest, build_space
from eftnas_deploy.space.klein import UnitSelection, medium_space
from tests.conftest import outputs_of, random_inputs, tiny_model


@pytest.fixture
def geometry():
    return ModelGeometry.from_config(tiny_model().config)


def _request(model) -> SpaceRequest:
    scores = reorder_by_importance(model, magnitude_importance(model))
    full = count_macs(SubnetConfig.full(scores.geometry), scores.geometry)
    return SpaceRequest(scores, 0.2 * full, 0.9 * full, num_targets=3, tolerance=0.1, ffn_multiple=16)


@pytest.mark.parametrize("kind", sorted(SPACE_KINDS))
def test_every_space_kind_is_a_search_space_over_per_layer_choices(kind, geometry):
    space = build_space(kind, _request(tiny_model()))
    assert isinstance(space, SearchSpace) and space.metadata["kind"] == kind
    space.validate(geometry)
    cost = [count_macs(s, geometry) for s in (space.smallest(), space.middle(), space.largest())]
    assert cost == sorted(cost) and cost[0] < cost[-1]
    assert space.largest() == SubnetConfig.full(geometry)
    rng = random.Random(0)
    for _ in range(30):
        space.check(space.sample(rng).validate(geometry))


def test_medium_space_allows_dropping_blocks_and_unknown_kinds_are_refused(geometry):
    space = build_space("medium", _request(tiny_model()))
    assert space == medium_space(geometry, ffn_step=16) and 0 in space.heads[0] and 0 in space.ffn[0]
    assert space.smallest() == SubnetConfig([0] * 3, [0] * 3)
    with pytest.raises(SearchSpaceError, match=r"not one of \('eftnas', 'medium'\)"):
        build_space("large", _request(tiny_model()))


def test_space_kind_is_a_validated_pipeline_setting():
    from eftnas_deploy.app.pipeline.config import PipelineConfig

    base = {"model": {"name": "x"}}
    assert PipelineConfig.from_dict({**base, "space": {"kind": "medium"}}).space.kind == "medium"
    with pytest.raises(EftnasError, match=r"space.kind: 'small' is not one of \('eftnas', 'medium'\)"):
        PipelineConfig.from_dict({**base, "space": {"kind": "small"}})


def test_unit_selection_slices_exactly():
    model = tiny_model()
    inputs = random_inputs()
    geometry = SuperNetwork(tiny_model()).geometry
    selection = UnitSelection(heads=[[1, 3], [0], [2, 1, 3]], ffn=[[5, 0, 77, 100], list(range(0, 128, 3)), [127]])
    selection.validate(geometry)
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
    with pytest.raises(SearchSpaceError, match="layer 0: head indices"):
        UnitSelection(heads=[[4], [], []], ffn=[[], [], []]).validate(geometry)
