import pytest
import torch

from eftnas_deploy import SuperNetwork, permute_ffn, permute_heads
from eftnas_deploy.core.errors import EftnasError
from tests.conftest import MODEL_KINDS, outputs_of, random_inputs, tiny_model


@pytest.mark.parametrize("model_type, task", MODEL_KINDS)
def test_permutations_preserve_the_function(model_type, task):
    model = tiny_model(model_type, task)
    inputs = random_inputs()
    before = outputs_of(model, inputs)
    g = torch.Generator().manual_seed(3)
    for layer in range(model.config.num_hidden_layers):
        permute_heads(model, layer, torch.randperm(4, generator=g))
        permute_ffn(model, layer, torch.randperm(128, generator=g))
    after = outputs_of(model, inputs)
    assert (after - before).abs().max().item() <= 1e-5


def test_permutation_moves_the_head_to_the_prefix():
    model = tiny_model()
    attn = model.bert.encoder.layer[1].attention.self
    head3 = attn.query.weight[3 * 16 : 4 * 16].clone()
    permute_heads(model, 1, [3, 0, 1, 2])
    torch.testing.assert_close(attn.query.weight[:16], head3, rtol=0, atol=0)


def test_reorder_works_on_a_supernetwork_too():
    supernet = SuperNetwork(tiny_model())
    inputs = random_inputs()
    before = outputs_of(supernet.model, inputs)
    permute_ffn(supernet.model, 0, list(reversed(range(128))))
    assert (outputs_of(supernet.model, inputs) - before).abs().max().item() <= 1e-5


def test_bad_order_is_refused():
    model = tiny_model()
    with pytest.raises(EftnasError, match="layer 0: head order must be a permutation"):
        permute_heads(model, 0, [0, 0, 1, 2])
    with pytest.raises(EftnasError, match="layer 2: FFN neuron order"):
        permute_ffn(model, 2, list(range(127)))
