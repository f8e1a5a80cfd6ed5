import copy

import pytest
import torch

from eftnas_deploy import SubnetConfig, SuperNetwork
from eftnas_deploy.core.errors import SubnetConfigError
from tests.conftest import MODEL_KINDS, outputs_of, random_inputs, tiny_model


@pytest.mark.parametrize("model_type, task", MODEL_KINDS)
def test_full_subnet_equals_original_model(model_type, task):
    model = tiny_model(model_type, task)
    reference = copy.deepcopy(model)
    supernet = SuperNetwork(model)
    inputs = random_inputs()
    torch.testing.assert_close(outputs_of(supernet.model, inputs), outputs_of(reference, inputs), rtol=0, atol=1e-6)


def test_subnet_changes_output_and_reset_restores_it():
    supernet = SuperNetwork(tiny_model())
    inputs = random_inputs()
    full = outputs_of(supernet.model, inputs)
    small = SubnetConfig(heads=[1, 0, 2], ffn=[16, 128, 0])
    with supernet.activate(small):
        assert supernet.active == small
        assert (outputs_of(supernet.model, inputs) - full).abs().max() > 1e-3
    assert supernet.active == SubnetConfig.full(supernet.geometry)
    supernet.set_subnet(small)
    supernet.reset()
    torch.testing.assert_close(outputs_of(supernet.model, inputs), full, rtol=0, atol=0)


def test_gradients_reach_only_the_active_prefix_of_shared_weights():
    supernet = SuperNetwork(tiny_model())
    supernet.model.train()
    supernet.set_subnet(SubnetConfig(heads=[2, 0, 4], ffn=[32, 128, 0]))
    inputs = random_inputs()
    loss = supernet(**inputs, labels=torch.tensor([0, 1, 1])).loss
    loss.backward()
    layer0 = supernet.layers[0]
    q_grad = layer0.attention.self.query.weight.grad
    assert q_grad[: 2 * 16].abs().sum() > 0 and q_grad[2 * 16 :].abs().sum() == 0
    ffn_grad = layer0.intermediate.dense.weight.grad
    assert ffn_grad[:32].abs().sum() > 0 and ffn_grad[32:].abs().sum() == 0
    assert supernet.layers[1].attention.self.query.weight.grad is None  # skipped block
    assert supernet.layers[2].output.dense.weight.grad is None


def test_state_dict_keys_are_unchanged_by_wrapping():
    model = tiny_model()
    keys = list(model.state_dict())
    supernet = SuperNetwork(model)
    assert list(supernet.model.state_dict()) == keys


def test_bad_subnet_is_refused_with_layer_and_field():
    supernet = SuperNetwork(tiny_model())
    with pytest.raises(SubnetConfigError, match="layer 2: 5 heads requested, model has 4"):
        supernet.set_subnet(SubnetConfig(heads=[4, 4, 5], ffn=[1, 1, 1]))


def test_save_and_reload_supernet(tmp_path):
    supernet = SuperNetwork(tiny_model("roberta", "question-answering"))
    supernet.save_pretrained(tmp_path / "sn")
    again = SuperNetwork.from_pretrained(str(tmp_path / "sn"), task="question-answering")
    again.model.eval()
    inputs = random_inputs()
    subnet = SubnetConfig(heads=[1, 2, 0], ffn=[0, 7, 128])
    with supernet.activate(subnet), again.activate(subnet):
        torch.testing.assert_close(outputs_of(again.model, inputs), outputs_of(supernet.model, inputs))
