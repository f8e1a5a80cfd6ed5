"""The model-family registry, and DistilBERT through the same code paths as BERT/RoBERTa."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification

from eftnas_deploy import EftnasError, ModelGeometry, SubnetConfig, SuperNetwork, load_sliced, save_sliced, slice_subnet
from eftnas_deploy.core.family import family_names, get_family
from eftnas_deploy.families.models import build_model, encoder_layers, make_config, model_input_names
from eftnas_deploy.importance.scores import magnitude_importance, movement_importance, reorder_by_importance
from eftnas_deploy.supernet.loading import load_model
from tests.conftest import SHARED_DATA, TINY, outputs_of, random_inputs, tiny_model

SUBNET = SubnetConfig(heads=(2, 0, 4), ffn=(0, 64, 128))
AUTO = {"text-classification": AutoModelForSequenceClassification, "question-answering": AutoModelForQuestionAnswering}


def test_registry_declares_every_family_as_data():
    assert {"bert", "roberta", "distilbert"} <= set(family_names())
    bert, roberta, distil = get_family("bert"), get_family("roberta"), get_family("distilbert")
    assert roberta.attention == bert.attention and roberta.ffn == bert.ffn  # RoBERTa = BERT's layout
    assert (bert.position_offset, roberta.position_offset, distil.position_offset) == (0, 2, 0)
    assert "token_type_ids" in bert.input_names and "token_type_ids" not in distil.input_names
    assert distil.config_fields["intermediate_size"] == "hidden_dim" and distil.config_fields["type_vocab_size"] is None
    assert distil.attention.rows == ("attention.q_lin", "attention.k_lin", "attention.v_lin")
    assert distil.ffn.columns == ("ffn.lin2",)
    assert distil.onnx_model_type == "distilbert" and roberta.onnx_model_type == "roberta"
    with pytest.raises(EftnasError, match="'gpt2' is not supported"):
        get_family("gpt2")


def test_geometry_consults_the_registry():
    config = make_config("distilbert", **TINY)
    assert (config.n_layers, config.n_heads, config.dim, config.hidden_dim) == (3, 4, 64, 128)
    geometry = ModelGeometry.from_config(config, "text-classification")
    assert (geometry.num_layers, geometry.head_dim, geometry.intermediate_size, geometry.type_vocab_size) == (
        3,
        16,
        128,
        0,
    )
    assert geometry.max_seq_len == 64
    roberta = ModelGeometry.from_config(make_config("roberta", **TINY), "text-classification")
    assert roberta.max_seq_len == 62
    with pytest.raises(EftnasError, match="model_type"):
        ModelGeometry.from_dict({**geometry.to_dict(), "model_type": "gpt2"})


def test_core_and_family_data_import_without_torch():
    code = (
        "import sys, eftnas_deploy.core, eftnas_deploy.core.geometry, eftnas_deploy.core.family;"
        "import eftnas_deploy.families;"
        "from eftnas_deploy.core.geometry import ModelGeometry;"
        "assert 'distilbert' in eftnas_deploy.core.family.family_names();"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("task", ["text-classification", "question-answering"])
def test_distilbert_supernet_slices_exactly(task, attn, tmp_path):
    model = tiny_model("distilbert", task, attn_implementation=attn)
    assert model.config._attn_implementation == attn  # eager hands blocks a 2D mask, sdpa a 4D one
    inputs = random_inputs()
    reference = outputs_of(model, inputs)
    supernet = SuperNetwork(model)
    torch.testing.assert_close(outputs_of(supernet.model, inputs), reference, atol=1e-5, rtol=0)
    supernet.set_subnet(SUBNET)
    active = outputs_of(supernet.model, inputs)
    dense = slice_subnet(supernet, SUBNET)
    keys = dense.state_dict().keys()
    # Layer 0 drops its FFN with the output LayerNorm, layer 1 its attention with sa_layer_norm.
    assert not any(
        k.startswith(("distilbert.transformer.layer.0.ffn.", "distilbert.transformer.layer.0.output_")) for k in keys
    )
    assert not any(
        k.startswith(("distilbert.transformer.layer.1.attention.", "distilbert.transformer.layer.1.sa_")) for k in keys
    )
    assert dense.distilbert.transformer.layer[0].attention.q_lin.out_features == 32
    torch.testing.assert_close(outputs_of(dense, inputs), active, atol=1e-5, rtol=0)
    save_sliced(dense, tmp_path / "sliced")
    stock = AUTO[task].from_pretrained(tmp_path / "sliced", trust_remote_code=True).eval()
    torch.testing.assert_close(outputs_of(stock, inputs), active, atol=1e-5, rtol=0)
    torch.testing.assert_close(outputs_of(load_sliced(tmp_path / "sliced").eval(), inputs), active, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        outputs_of(load_model(str(tmp_path / "sliced"), task).eval(), inputs), active, atol=1e-5, rtol=0
    )


def test_distilbert_reordering_and_importance_keep_the_function():
    supernet = SuperNetwork(tiny_model("distilbert", "text-classification"))
    inputs = random_inputs()
    before = outputs_of(supernet.model, inputs)
    scores = magnitude_importance(supernet.model)
    assert tuple(scores.heads.shape) == (3, 4) and tuple(scores.ffn.shape) == (3, 128)
    reordered = reorder_by_importance(supernet.model, scores)
    assert reordered.is_sorted()
    torch.testing.assert_close(outputs_of(supernet.model, inputs), before, atol=1e-5, rtol=0)
    # Movement importance drops the token_type_ids a BERT tokenizer adds: DistilBERT does not take them.
    batch = {
        **random_inputs(),
        "token_type_ids": torch.zeros(3, 20, dtype=torch.long),
        "labels": torch.tensor([0, 1, 0]),
    }
    moved = movement_importance(supernet.model, [batch], steps=2, progress=False)
    assert moved.metadata["steps"] == 2


def test_sliced_dirs_without_a_layout_still_load_as_bert(tmp_path):
    """Directories written before `eftnas_layout` existed (BERT/RoBERTa) keep loading."""
    supernet = SuperNetwork(tiny_model("bert", "text-classification"))
    dense = slice_subnet(supernet, SUBNET)
    inputs = random_inputs()
    expected = outputs_of(dense, inputs)
    save_sliced(dense, tmp_path / "old")
    config_path = tmp_path / "old" / "config.json"
    config = json.loads(config_path.read_text())
    del config["eftnas_layout"]
    config_path.write_text(json.dumps(config))
    for loaded in (
        load_sliced(tmp_path / "old"),
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "old", trust_remote_code=True),
    ):
        torch.testing.assert_close(outputs_of(loaded.eval(), inputs), expected, atol=1e-6, rtol=0)


def test_inputs_follow_the_family():
    distil = build_model("distilbert", **TINY)
    assert model_input_names(distil) == ("input_ids", "attention_mask")
    assert len(encoder_layers(distil)) == 3
    from exporters.parity import padded_inputs

    assert set(padded_inputs(100, input_names=model_input_names(distil))) == {"input_ids", "attention_mask"}


def test_lut_exports_distilbert_with_the_bundle_exporter(tmp_path):
    import onnx

    from latency_lut.config import config_from_geometry
    from latency_lut.export import exported, random_dense_model
    from latency_lut.measure import stack_subnet

    geometry = ModelGeometry.from_config(make_config("distilbert", **TINY), "text-classification")
    config = config_from_geometry(geometry)
    model = random_dense_model(config, geometry, stack_subnet("attention", 2, 2))
    with exported(model, tmp_path / "onnx") as path:
        graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]


def test_distilbert_bundle_parity_and_int8(tmp_path):
    """ONNX (plain and ORT-optimized), OpenVINO and INT8 of a sliced DistilBERT, calibrated with BERT-tokenized rows."""
    from transformers import AutoTokenizer

    from exporters.bundle import FORMATS, ExportSource, export_bundle
    from exporters.calibration import read_rows, tokenize_rows

    tokenizer_dir = SHARED_DATA / "tokenizers" / "bert-base-uncased"
    if not tokenizer_dir.is_dir():
        pytest.skip("shared tokenizer not found")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    supernet = SuperNetwork(tiny_model("distilbert", "text-classification", vocab_size=tokenizer.vocab_size))
    rows = read_rows(SHARED_DATA / "glue" / "SST-2" / "dev.tsv")[:60]
    data = tokenize_rows(rows, tokenizer, "sentence", label_column="label", max_length=64)
    assert "token_type_ids" in data.features[0]
    source = ExportSource.from_supernet(supernet, SUBNET, tokenizer)
    manifest = export_bundle(
        source, tmp_path / "bundle", FORMATS, calibration=data.take(0, 30), evaluation=data.take(30), ort_optimize=True
    )
    assert all(entry["ok"] for entry in manifest["parity"].values())
    assert {"onnx", "openvino"} <= set(manifest["parity"])
    assert manifest["parity"]["onnx"]["max_abs_diff"] <= 1e-4 and manifest["parity"]["openvino"]["max_abs_diff"] <= 1e-3
    assert manifest["ort_optimization"]["fused_operators"].get("Attention") == 2  # layers 0 and 2 keep heads


@pytest.mark.slow
def test_tiny_distilbert_pipeline(tmp_path):
    from eftnas_deploy.app.commands.demo import demo_config, write_task
    from eftnas_deploy.app.pipeline import read_state
    from eftnas_deploy.app.pipeline.config import PipelineConfig
    from eftnas_deploy.app.pipeline.runner import run_pipeline

    run_dir = tmp_path / "run"
    write_task(run_dir / "data", 300, 80, seed=0)
    config = demo_config(run_dir, "tiny", 0)
    config["model"]["model_type"] = "distilbert"
    config["teacher"] = {"epochs": 1.0, "lr": 1e-3}
    config["importance"]["steps"] = 4
    config["supernet"] = {"strategy": "full", "epochs": 0.2, "lr": 5e-4}
    config["search"] |= {"evals": 8, "remeasure_top": 1}
    config["finetune"] = {"epochs": 0.2, "lr": 2e-4}
    config["lut"] |= {"validate_samples": 2}
    config["export"] |= {"calibration_size": 16, "benchmark_repeats": 3}
    run_pipeline(PipelineConfig.from_dict(config), run_dir, keep=("data",))
    state = read_state(run_dir)
    assert all(stage["status"] == "done" for stage in state["stages"].values())
    sliced = json.loads(next(run_dir.rglob("pytorch/config.json")).read_text())
    assert sliced["model_type"] == "distilbert" and sliced["architectures"][0].startswith("EftnasDistilBert")
    onnx_files = list(run_dir.rglob("model.onnx"))
    assert onnx_files
    import onnx

    assert "token_type_ids" not in [i.name for i in onnx.load(str(onnx_files[0])).graph.input]
