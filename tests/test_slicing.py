import json
import random

import pytest
import torch
from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification

from eftnas_deploy import (
    EftnasError,
    ModelGeometry,
    OutputDirError,
    SearchSpace,
    SubnetConfig,
    SubnetConfigError,
    SuperNetwork,
    load_sliced,
    save_sliced,
    slice_subnet,
)
from tests.conftest import MODEL_KINDS, outputs_of, random_inputs, tiny_model

AUTO = {"text-classification": AutoModelForSequenceClassification, "question-answering": AutoModelForQuestionAnswering}


def random_subnets(geometry: ModelGeometry, n: int, seed: int) -> list[SubnetConfig]:
    """Random sub-networks with skipped blocks, uneven widths, and the two extremes."""
    rng = random.Random(seed)
    space = SearchSpace(
        heads=[range(geometry.num_heads + 1)] * geometry.num_layers,
        ffn=[[0, 1, 7, 33, 64, geometry.intermediate_size]] * geometry.num_layers,
    )
    skip_all = SubnetConfig(heads=[0] * geometry.num_layers, ffn=[0] * geometry.num_layers)
    return [space.sample(rng) for _ in range(n)] + [skip_all, SubnetConfig.full(geometry)]


@pytest.mark.parametrize("model_type, task", MODEL_KINDS)
def test_sliced_model_equals_active_supernet(model_type, task):
    supernet = SuperNetwork(tiny_model(model_type, task))
    inputs = random_inputs()
    for subnet in random_subnets(supernet.geometry, n=6, seed=hash(model_type + task) % 100):
        with supernet.activate(subnet):
            expected = outputs_of(supernet.model, inputs)
        dense = slice_subnet(supernet, subnet)
        assert (outputs_of(dense, inputs) - expected).abs().max().item() <= 1e-5, subnet


def test_dense_shapes_are_physically_smaller():
    supernet = SuperNetwork(tiny_model())
    dense = slice_subnet(supernet, SubnetConfig(heads=[1, 0, 3], ffn=[9, 128, 0]))
    layers = dense.bert.encoder.layer
    assert layers[0].attention.self.query.weight.shape == (16, 64)
    assert layers[0].attention.output.dense.weight.shape == (64, 16)
    assert layers[0].intermediate.dense.weight.shape == (9, 64)
    assert layers[0].output.dense.weight.shape == (64, 9)
    assert not list(layers[1].attention.parameters())
    assert not list(layers[2].intermediate.parameters()) and not list(layers[2].output.parameters())


@pytest.mark.parametrize("model_type, task", MODEL_KINDS)
def test_saved_directory_loads_with_stock_transformers(tmp_path, model_type, task):
    supernet = SuperNetwork(tiny_model(model_type, task))
    subnet = SubnetConfig(heads=[2, 0, 4], ffn=[0, 50, 128])
    dense = slice_subnet(supernet, subnet)
    out = save_sliced(dense, tmp_path / "dense")
    inputs = random_inputs()
    expected = outputs_of(dense, inputs)

    stock = AUTO[task].from_pretrained(out, trust_remote_code=True).eval()
    assert type(stock).__name__ == dense.config.architectures[0]
    assert (outputs_of(stock, inputs) - expected).abs().max().item() <= 1e-5
    native = load_sliced(out).eval()
    assert type(native).__module__ == "eftnas_deploy.supernet.modeling_eftnas"  # no remote code ran
    assert (outputs_of(native, inputs) - expected).abs().max().item() <= 1e-5

    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == model_type
    assert config["eftnas_subnet"] == subnet.to_dict()
    assert ModelGeometry.from_dict(config["eftnas_parent"]) == supernet.geometry
    assert "pruned_heads" not in config or not config["pruned_heads"]
    assert SubnetConfig.load(out / "subnet.json") == subnet
    assert (out / "model.safetensors").is_file() and (out / "modeling_eftnas.py").is_file()


def test_tokenizer_is_saved_beside_the_model(tmp_path, shared_data):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(shared_data / "tokenizers" / "bert-base-uncased")
    supernet = SuperNetwork(tiny_model(vocab_size=tokenizer.vocab_size))
    out = save_sliced(slice_subnet(supernet, supernet.geometry and SubnetConfig([1, 1, 1], [8, 8, 8])),
                      tmp_path / "d", tokenizer=tokenizer)  # fmt: skip
    again = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True)
    logits = model(**again(["a fine movie", "dull"], padding=True, return_tensors="pt")).logits
    assert logits.shape == (2, 2)


def test_output_dir_is_refused_when_not_empty_and_left_intact_on_failure(tmp_path):
    supernet = SuperNetwork(tiny_model())
    dense = slice_subnet(supernet, SubnetConfig([1, 1, 1], [8, 8, 8]))
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    with pytest.raises(OutputDirError, match="not empty"):
        save_sliced(dense, target)
    assert (target / "keep.txt").read_text() == "x"

    class Boom(RuntimeError):
        pass

    def failing_save(*args, **kwargs):
        raise Boom

    dense.save_pretrained = failing_save  # type: ignore[method-assign]
    with pytest.raises(Boom):
        save_sliced(dense, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary left behind
    with pytest.raises(Boom):
        save_sliced(dense, target, overwrite=True)
    assert (target / "keep.txt").read_text() == "x"


def test_overwrite_replaces_the_directory(tmp_path):
    supernet = SuperNetwork(tiny_model())
    target = tmp_path / "out"
    target.mkdir()
    (target / "stale.txt").write_text("x")
    save_sliced(slice_subnet(supernet, SubnetConfig([1, 1, 1], [8, 8, 8])), target, overwrite=True)
    assert not (target / "stale.txt").exists() and (target / "config.json").is_file()


def test_bad_inputs_are_refused():
    supernet = SuperNetwork(tiny_model())
    with pytest.raises(SubnetConfigError, match="layer 1: FFN width 129 requested, model has 128"):
        slice_subnet(supernet, SubnetConfig([1, 1, 1], [8, 129, 8]))
    dense = slice_subnet(supernet, SubnetConfig([1, 1, 1], [8, 8, 8]))
    with pytest.raises(EftnasError, match="already a sliced sub-network"):
        slice_subnet(dense, SubnetConfig([1, 1, 1], [8, 8, 8]))
    with pytest.raises(EftnasError, match="not a sliced sub-network"):
        save_sliced(supernet.model, "unused")


def test_slicing_keeps_gradients_out_of_the_dense_copy():
    supernet = SuperNetwork(tiny_model())
    subnet = SubnetConfig([2, 2, 2], [64, 64, 64])
    dense = slice_subnet(supernet, subnet)
    with torch.no_grad():
        dense.bert.encoder.layer[0].attention.self.query.weight.zero_()
    assert supernet.layers[0].attention.self.query.weight.abs().sum() > 0
