"""SQFT with NNCF: quantization-aware elastic LoRA strips to integer weights that compute what was trained."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.subnet import SubnetConfig
from tests.conftest import outputs_of, random_inputs, tiny_model
from tests.test_lora import SMALL, _geometry

pytestmark = pytest.mark.integration  # the first NNCF call compiles its torch extension (minutes on 2 busy cores)
pytest.importorskip("torchao")


@pytest.fixture(autouse=True)
def _nncf_build_timeout(monkeypatch):
    monkeypatch.setenv("NNCF_EXTENSION_LOAD_TIMEOUT", "900")


def _trained_qa(mode: str):
    """A QA model whose adapters moved away from their SVD start (as training would move them)."""
    from eftnas_deploy.lora import sqft

    inputs = random_inputs()
    model = sqft.quantization_aware(tiny_model(seed=0, **SMALL).eval(), mode, 4, [inputs])
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("lora_A", "lora_B")):
                parameter.normal_(0, 0.1)
    return model, inputs


@pytest.mark.parametrize("mode", ["int4", "int8"])
def test_stripped_model_computes_the_trained_fake_quantized_model(mode):
    import openvino as ov

    from eftnas_deploy.lora import sqft
    from eftnas_deploy.lora.nncf_nls import set_nls_ranks

    model, inputs = _trained_qa(mode)
    trainable = {name.rsplit(".", 1)[-1] for name, p in model.named_parameters() if p.requires_grad}
    assert {"lora_A", "lora_B", "input_low"} <= trainable and "word_embeddings" not in str(trainable)
    geometry = _geometry(model)
    layers = geometry.num_layers
    subnet = SubnetConfig.full(geometry).replace(lora_qkv=[2] * layers, lora_up=[1] * layers, lora_down=[4] * layers)
    full = outputs_of(model, inputs)
    set_nls_ranks(model, subnet)
    reduced = outputs_of(model, inputs)
    assert not torch.allclose(full, reduced, atol=1e-4)  # the ranks reach the quantizers

    stripped = sqft.strip_to_compressed(model, inputs)
    assert torch.allclose(outputs_of(stripped, inputs), reduced, atol=1e-5)  # adapters absorbed on the grid
    found = sqft.decompressors(stripped)
    assert f"{mode.upper()}AsymmetricWeightsDecompressor" in found
    assert not any(n.endswith("lora_A") for n, _ in stripped.named_parameters())

    ir = ov.convert_model(stripped, example_input=dict(inputs))
    weight_types = {op.get_element_type().get_type_name() for op in ir.get_ops() if op.get_type_name() == "Constant"}
    assert ("u4" if mode == "int4" else "u8") in weight_types
    compiled = ov.Core().compile_model(ir, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ov_logits = compiled({k: v.numpy() for k, v in inputs.items()})[0]
    assert np.abs(ov_logits - reduced.numpy()).max() <= 1e-4


def test_post_training_baseline_compresses_the_same_weights():
    from eftnas_deploy.lora import sqft

    model, inputs = _trained_qa("int4")
    ptq = sqft.post_training(tiny_model(seed=0, **SMALL).eval(), "int4", [inputs])
    assert sqft.decompressors(ptq) == sqft.decompressors(sqft.strip_to_compressed(model, inputs))


def test_unknown_mode_and_rank_are_refused_by_field():
    from eftnas_deploy.lora import sqft

    with pytest.raises(EftnasError, match=r"sqft\.mode: 'int3'"):
        sqft.quantization_aware(tiny_model(seed=0, **SMALL), "int3", 4, [random_inputs()])
    with pytest.raises(EftnasError, match=r"sqft\.rank: must be >= 1"):
        sqft.quantization_aware(tiny_model(seed=0, **SMALL), "int4", 0, [random_inputs()])
