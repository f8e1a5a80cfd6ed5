import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from eftnas_deploy import SubnetConfig, SuperNetwork, count_macs, count_params, slice_subnet
from tests.conftest import MODEL_KINDS, tiny_model

SUBNETS = [
    SubnetConfig(heads=[4, 4, 4], ffn=[128, 128, 128]),
    SubnetConfig(heads=[2, 0, 3], ffn=[0, 50, 128]),
    SubnetConfig(heads=[0, 0, 1], ffn=[1, 0, 0]),
]


@pytest.mark.parametrize("model_type, task", MODEL_KINDS)
def test_params_equal_the_sliced_model(model_type, task):
    supernet = SuperNetwork(tiny_model(model_type, task))
    for subnet in SUBNETS:
        dense = slice_subnet(supernet, subnet)
        assert count_params(subnet, supernet.geometry) == sum(p.numel() for p in dense.parameters())


@pytest.mark.parametrize("model_type, task", MODEL_KINDS)
@pytest.mark.parametrize("seq_len, batch", [(16, 1), (40, 3)])
def test_macs_match_torch_flop_counter(model_type, task, seq_len, batch):
    model = tiny_model(model_type, task)
    model.config._attn_implementation = "eager"  # explicit matmuls, which FlopCounterMode counts
    supernet = SuperNetwork(model)
    ids = torch.randint(5, 100, (batch, seq_len))
    for subnet in SUBNETS:
        dense = slice_subnet(supernet, subnet)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            dense(input_ids=ids)
        measured = counter.get_total_flops() / 2
        predicted = count_macs(subnet, supernet.geometry, seq_len=seq_len, batch=batch)
        assert predicted == pytest.approx(measured, rel=0.01), subnet


def test_macs_shrink_with_the_subnet():
    supernet = SuperNetwork(tiny_model())
    g = supernet.geometry
    full = count_macs(SubnetConfig.full(g), g, seq_len=32)
    assert count_macs(SUBNETS[1], g, seq_len=32) < full
    assert count_macs(SubnetConfig.full(g), g, seq_len=32, batch=4) == 4 * full
