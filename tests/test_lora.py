"""Elastic LoRA super-adapters: exact rank slicing, merge, stock-peft sub-adapters and NLS training."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora.layer import Linear as PeftLoraLinear
from transformers import BertForSequenceClassification

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.families.models import family_of
from eftnas_deploy.lora import ElasticLoRA, attach_lora, lora_groups
from eftnas_deploy.metrics import count_macs, count_params
from tests.conftest import MODEL_KINDS, outputs_of, random_inputs, tiny_model

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def _randomize(elastic: ElasticLoRA, seed: int = 0) -> None:
    """peft starts B at zero (a no-op adapter); give every adapter a non-trivial update."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in elastic.modules.values():
            for weight in (module.lora_A["default"].weight, module.lora_B["default"].weight):
                weight.copy_(torch.randn(weight.shape, generator=g) * 0.2)
        heads = [p for n, p in elastic.model.named_parameters() if p.requires_grad and "lora_" not in n]
        assert heads  # the trained task head (peft modules_to_save) must travel with a sub-adapter too
        for param in heads:
            param.add_(torch.randn(param.shape, generator=g) * 0.2)


@pytest.fixture
def base():
    return tiny_model(seed=0, **SMALL)


@pytest.fixture
def elastic(base):
    elastic = attach_lora(copy.deepcopy(base), max_rank=8, alpha=16)
    _randomize(elastic)
    elastic.model.eval()
    return elastic


def _ranks(qkv, up, down) -> SubnetConfig:
    return SubnetConfig(heads=[4, 4], ffn=[64, 64], lora_qkv=qkv, lora_up=up, lora_down=down)


def test_groups_target_the_right_projections(elastic):
    assert len(elastic.modules) == 2 * 5
    assert sorted(n for n in elastic.modules if "layer.0." in n) == [
        "bert.encoder.layer.0.attention.self.key",
        "bert.encoder.layer.0.attention.self.query",
        "bert.encoder.layer.0.attention.self.value",
        "bert.encoder.layer.0.intermediate.dense",
        "bert.encoder.layer.0.output.dense",
    ]
    assert elastic.groups["bert.encoder.layer.1.output.dense"] == ("lora_down", 1)
    trainable = {n for n, p in elastic.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "classifier" in n for n in trainable)
    assert any("classifier" in n for n in trainable)
    assert elastic.dimensions == ("lora_qkv", "lora_up", "lora_down")


def test_rank_slicing_equals_an_explicit_smaller_peft_lora(base, elastic):
    rank, inputs = 3, random_inputs()
    small = get_peft_model(
        copy.deepcopy(base),
        LoraConfig(
            r=rank,
            lora_alpha=16 * rank / 8,
            target_modules="|".join(lora_groups(family_of(base)).values()),
            task_type="SEQ_CLS",
        ),
    ).eval()
    with torch.no_grad():
        for name, module in small.named_modules():
            if isinstance(module, PeftLoraLinear):
                source = elastic.modules[name.removeprefix("base_model.model.")]
                module.lora_A["default"].weight.copy_(source.lora_A["default"].weight[:rank])
                module.lora_B["default"].weight.copy_(source.lora_B["default"].weight[:, :rank])
        heads = {n: p for n, p in elastic.model.named_parameters() if p.requires_grad and "lora_" not in n}
        for name, param in small.named_parameters():
            if name in heads:
                param.copy_(heads.pop(name))
        assert not heads
    subnet = _ranks([rank] * 2, [rank] * 2, [rank] * 2)
    with elastic.activate(subnet):
        got = outputs_of(elastic.model, inputs)
    assert torch.allclose(got, outputs_of(small, inputs), atol=1e-6, rtol=0)
    full = outputs_of(elastic.model, inputs)
    assert not torch.allclose(got, full, atol=1e-3)  # the rank really changed the function
    assert elastic.active == elastic.full()


def test_gradients_reach_only_the_active_rank_prefix(elastic):
    elastic.set_subnet(_ranks([2, 8], [5, 1], [0, 3]))
    elastic.model(**random_inputs(), labels=torch.tensor([0, 1, 1])).loss.backward()
    query = elastic.modules["bert.encoder.layer.0.attention.self.query"]
    grad_a, grad_b = query.lora_A["default"].weight.grad, query.lora_B["default"].weight.grad
    assert grad_a[:2].abs().sum() > 0 and grad_a[2:].abs().sum() == 0
    assert grad_b[:, :2].abs().sum() > 0 and grad_b[:, 2:].abs().sum() == 0
    down = elastic.modules["bert.encoder.layer.0.output.dense"]
    assert down.lora_A["default"].weight.grad.abs().sum() == 0  # rank 0: adapter off
    assert query.base_layer.weight.grad is None


def test_merge_equals_the_unmerged_sub_adapter(elastic):
    subnet, inputs = _ranks([8, 0], [2, 5], [1, 8]), random_inputs()
    before = {n: p.clone() for n, p in elastic.model.named_parameters()}
    merged = elastic.merged_model(subnet)
    assert type(merged) is BertForSequenceClassification
    with elastic.activate(subnet):
        expected = outputs_of(elastic.model, inputs)
    assert torch.allclose(outputs_of(merged.eval(), inputs), expected, atol=1e-5, rtol=0)
    assert all(torch.equal(p, before[n]) for n, p in elastic.model.named_parameters())  # merged into a copy


def test_sub_adapter_is_a_stock_peft_adapter(base, elastic, tmp_path):
    subnet, inputs = _ranks([6, 0], [2, 5], [1, 8]), random_inputs()
    directory = elastic.save_sub_adapter(tmp_path / "sub", subnet)
    config = json.loads((directory / "adapter_config.json").read_text())
    assert config["r"] == 8 and sorted(config["rank_pattern"].values()) == [1, 2, 5, 6, 6, 6, 8]
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), str(directory)).eval()
    ranks = {n.removeprefix("base_model.model."): m.r["default"] for n, m in loaded.named_modules() if hasattr(m, "r")}
    assert ranks["bert.encoder.layer.0.attention.self.value"] == 6 and ranks["bert.encoder.layer.1.output.dense"] == 8
    assert "bert.encoder.layer.1.attention.self.key" not in ranks  # rank 0: not adapted
    with elastic.activate(subnet):
        expected = outputs_of(elastic.model, inputs)
    assert torch.allclose(outputs_of(loaded, inputs), expected, atol=1e-5, rtol=0)
    # The super-adapter itself round-trips through save_pretrained / from_pretrained.
    elastic.model.save_pretrained(str(tmp_path / "super"))
    again = ElasticLoRA.from_pretrained(copy.deepcopy(base), tmp_path / "super")
    with again.activate(subnet):
        assert torch.allclose(outputs_of(again.model.eval(), inputs), expected, atol=1e-6, rtol=0)


def test_bad_sub_adapters_are_refused(elastic):
    with pytest.raises(EftnasError, match="layer 1: Q/K/V LoRA rank 9 > super-adapter rank 8"):
        elastic.set_subnet(_ranks([8, 9], [1, 1], [1, 1]))
    with pytest.raises(EftnasError, match="heads: elastic LoRA sets ranks only"):
        elastic.set_subnet(_ranks([8, 8], [1, 1], [1, 1]).replace(heads=[4, 2]))
    with pytest.raises(EftnasError, match="every LoRA rank is 0"):
        elastic.save_sub_adapter("unused", _ranks([0, 0], [0, 0], [0, 0]))
    only_qkv = attach_lora(tiny_model(**SMALL), max_rank=4, groups=("lora_qkv",))
    with pytest.raises(EftnasError, match="lora_up: the super-adapter has no lora_up adapters"):
        only_qkv.set_subnet(_ranks([4, 4], [1, 1], [1, 1]))


def test_rank_dimensions_cost_params_but_no_macs():
    elastic = attach_lora(tiny_model(**SMALL), max_rank=4)
    g, subnet = elastic.geometry, _ranks([4, 2], [1, 0], [3, 4])
    base = SubnetConfig.full(g)
    assert count_macs(subnet, g, seq_len=16) == count_macs(base, g, seq_len=16)
    adapter_params = sum(
        m.lora_A["default"].weight[: m.active_rank].numel() + m.lora_B["default"].weight[:, : m.active_rank].numel()
        for m in (elastic.set_subnet(subnet) or elastic.modules.values())
    )
    assert count_params(subnet, g) - count_params(base, g) == adapter_params


@pytest.mark.skipif(not __import__("tests.conftest").conftest.SHARED_DATA.is_dir(), reason="shared data not found")
def test_nls_sandwich_training_with_the_project_trainer_lowers_the_loss(tmp_path):
    from eftnas_deploy.training import SuperNetTrainer, collator_for, training_arguments
    from tests.training_utils import mean_task_loss, sst2_split, tokenizer

    split = sst2_split(rows=48, max_length=24)
    model = tiny_model(seed=0, **{**SMALL, "vocab_size": 30522, "max_position_embeddings": 128})
    frozen = {n: p.clone() for n, p in model.named_parameters() if "classifier" not in n}
    elastic = attach_lora(model, max_rank=8)
    layers = elastic.geometry.num_layers
    space = SearchSpace(
        heads=[[4]] * layers, ffn=[[64]] * layers, **{d: [[8, 4, 2]] * layers for d in elastic.dimensions}
    )
    before = {s: mean_task_loss(elastic, s, split) for s in (space.largest(), space.smallest())}
    trainer = SuperNetTrainer(
        supernet=elastic,  # duck-typed: model / geometry / set_subnet / reset
        search_space=space,
        strategy="sandwich",
        args=training_arguments(
            tmp_path, max_steps=12, per_device_train_batch_size=16, learning_rate=1e-2, disable_tqdm=True
        ),
        train_dataset=split.features,
        data_collator=collator_for(split, tokenizer()),
    )
    trainer.train()
    after = {s: mean_task_loss(elastic, s, split) for s in before}
    assert all(after[s] < before[s] - 0.02 for s in before), (before, after)
    checked = 0
    for name, param in elastic.model.get_base_model().named_parameters():
        key = name.replace(".base_layer", "")
        if key in frozen:
            assert torch.equal(param, frozen[key]), name  # only adapters and the head trained
            checked += 1
    assert checked == len(frozen)


def test_search_over_widths_and_ranks_together(elastic):
    """run_search encodes heads/ffn and the rank dimensions alike; a point is scored as merged ranks + widths."""
    from eftnas_deploy.search.searcher import SearchConfig, _distributions, run_search
    from eftnas_deploy.supernet.elastic import SuperNetwork

    g, inputs = elastic.geometry, random_inputs(batch=6, seq=12, seed=3)
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    space = SearchSpace(heads=[[4, 2]] * 2, ffn=[[64, 32]] * 2, **{d: [[8, 2, 0]] * 2 for d in elastic.dimensions})
    assert {"lora_qkv_0", "lora_down_1", "heads_0"} <= set(_distributions(space))
    scored: dict[SubnetConfig, float] = {}

    def accuracy(subnet: SubnetConfig) -> float:
        supernet = SuperNetwork(elastic.merged_model(elastic.ranks_only(subnet)).eval())
        with supernet.activate(subnet), torch.no_grad():
            scored[subnet] = -supernet.model(**inputs, labels=labels).loss.item()
        return scored[subnet]

    result = run_search(
        space,
        accuracy,
        lambda s: count_macs(s, g, seq_len=12),
        SearchConfig(algorithm="nsga2", evals=16, population=4, seed=0, show_progress=False),
    )
    assert result.trials == 16 and result.front
    assert all(p.subnet in space and p.accuracy == scored[p.subnet] for p in result.points)
    assert len({p.subnet.lora_qkv + p.subnet.lora_up + p.subnet.lora_down for p in result.points}) > 1
    # Ranks change the score at equal widths (cost), and widths change the cost.
    largest = space.largest()
    assert accuracy(largest) != accuracy(largest.replace(lora_qkv=[0, 0], lora_up=[0, 0], lora_down=[0, 0]))
    assert count_macs(space.smallest(), g, 12) < count_macs(largest, g, 12)


@pytest.mark.integration  # the first call compiles NNCF's torch extension (minutes on 2 busy cores)
def test_nncf_fq_lora_nls_ranks_follow_a_subnet(monkeypatch):
    """SQFT-style QA-NLS: NNCF's INT4 fake quantizers carry elastic LoRA; a SubnetConfig sets their ranks."""
    monkeypatch.setenv("NNCF_EXTENSION_LOAD_TIMEOUT", "900")  # NNCF's default 60 s is too short for a first build
    nncf = pytest.importorskip("nncf")
    from nncf.quantization.advanced_parameters import AdvancedCompressionParameters

    from eftnas_deploy.lora.nncf_nls import nls_quantizers, set_nls_ranks

    inputs = random_inputs()
    model = nncf.compress_weights(
        tiny_model(seed=0, **SMALL),
        mode=nncf.CompressWeightsMode.INT4_ASYM,
        group_size=16,
        ratio=1.0,
        dataset=nncf.Dataset([inputs]),
        compression_format=nncf.CompressionFormat.FQ_LORA_NLS,
        advanced_parameters=AdvancedCompressionParameters(lora_adapter_rank=8),
    )
    quantizers = nls_quantizers(model)
    assert len(quantizers) == 2 * 5 and quantizers["bert.encoder.layer.1.output.dense"][:2] == ("lora_down", 1)
    with torch.no_grad():
        for _, _, q in quantizers.values():
            q.lora_A.normal_(0, 0.1)
            q.lora_B.normal_(0, 0.1)
    full = outputs_of(model, inputs)
    subnet = _ranks([2, 8], [0, 4], [8, 1])
    ranks = set_nls_ranks(model, subnet)
    assert ranks["bert.encoder.layer.0.attention.self.key"] == 2 and ranks["bert.encoder.layer.1.output.dense"] == 1
    assert not torch.allclose(outputs_of(model, inputs), full, atol=1e-4)
    model.train()
    model(**inputs, labels=torch.tensor([0, 1, 0])).loss.backward()
    grad = quantizers["bert.encoder.layer.0.attention.self.query"][2].lora_A.grad
    assert grad[:2].abs().sum() > 0 and grad[2:].abs().sum() == 0
    set_nls_ranks(model, SubnetConfig.full(_geometry(model)))
    assert torch.allclose(outputs_of(model.eval(), inputs), full, atol=0, rtol=0)


def _geometry(model):
    from eftnas_deploy.core.geometry import ModelGeometry

    return ModelGeometry.from_config(model.config, task="text-classification")


@pytest.mark.parametrize("model_type,task", MODEL_KINDS)
def test_every_model_kind_merges_and_exports_exactly(model_type, task, tmp_path):
    base = tiny_model(model_type, task, seed=1, **SMALL)
    elastic = attach_lora(copy.deepcopy(base), max_rank=4)
    _randomize(elastic, seed=1)
    elastic.model.eval()
    subnet, inputs = _ranks([4, 1], [0, 3], [2, 4]), random_inputs()
    with elastic.activate(subnet):
        expected = outputs_of(elastic.model, inputs)
    assert torch.allclose(outputs_of(elastic.merged_model(subnet).eval(), inputs), expected, atol=1e-5, rtol=0)
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), str(elastic.save_sub_adapter(tmp_path, subnet))).eval()
    assert torch.allclose(outputs_of(loaded, inputs), expected, atol=1e-5, rtol=0)
