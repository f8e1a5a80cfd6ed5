"""Decoder LLMs (#15): tiny real Llama/Qwen2 causal LMs as elastic super-networks, reordered and sliced."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from eftnas_deploy.core.decoder_family import DecoderGeometry, decoder_family_names, get_decoder_family
from eftnas_deploy.core.errors import EftnasError, SubnetConfigError
from eftnas_deploy.core.family import family_names
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.importance.decoder import (
    decoder_magnitude_importance,
    decoder_taylor_importance,
    reorder_decoder_by_importance,
)
from eftnas_deploy.supernet.decoder import DecoderSuperNetwork, build_decoder, permute_decoder_units
from eftnas_deploy.supernet.decoder_slicing import load_sliced_decoder, save_sliced_decoder, slice_decoder

VOCAB = 256
TINY_DECODER = dict(num_layers=3, num_heads=4, num_kv_heads=2, hidden_size=64, intermediate_size=96, vocab_size=VOCAB)
KINDS = {
    "llama": ("llama", {}),
    "llama-bias-tied": ("llama", dict(attention_bias=True, mlp_bias=True, tie_word_embeddings=True)),
    "qwen2": ("qwen2", {}),
    "qwen2-sliding": ("qwen2", dict(use_sliding_window=True, sliding_window=4, max_window_layers=1)),
}
SKIPPING = SubnetConfig(heads=[0, 1, 2], ffn=[40, 0, 96])  # layer 0 attention and layer 1 MLP dropped
PARTIAL = SubnetConfig(heads=[1, 2, 1], ffn=[17, 96, 0])
SHALLOW = SubnetConfig(heads=[0, 2, 0], ffn=[0, 30, 50])  # layer 0 dropped whole, layer 2 attention dropped
EMPTY = SubnetConfig(heads=[0, 0, 0], ffn=[0, 0, 0])  # embeddings, final norm and LM head only


def tiny_decoder(kind: str = "llama", seed: int = 0, **overrides) -> torch.nn.Module:
    model_type, extra = KINDS[kind]
    torch.manual_seed(seed)
    return build_decoder(model_type, **{**TINY_DECODER, **extra, **overrides}).eval()


def token_batch(batch: int = 3, seq: int = 12, seed: int = 1) -> dict[str, torch.Tensor]:
    """Token ids with left padding in all but the first row (as for batched generation)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (batch, seq), generator=g)
    mask = torch.ones_like(ids)
    for row in range(1, batch):
        mask[row, : 2 * row] = 0
    return {"input_ids": ids.masked_fill(mask == 0, 0), "attention_mask": mask}


def greedy(model: torch.nn.Module, batch: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
    return model.generate(**batch, max_new_tokens=8, do_sample=False, pad_token_id=0, **kwargs)


def max_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    """Largest logit difference over real (unpadded) positions."""
    return (a - b).abs()[mask.bool()].max().item()


def test_decoder_families_are_registered_apart_from_encoders():
    assert {"llama", "qwen2"} <= set(decoder_family_names())
    assert not {"llama", "qwen2"} & set(family_names())  # the encoder pipeline does not see them
    g = DecoderGeometry.from_config(tiny_decoder("qwen2").config)
    assert (g.num_kv_heads, g.group_size, g.head_dim, g.intermediate_size) == (2, 2, 16, 96)
    assert get_decoder_family("qwen2").mlp.rows == ("mlp.gate_proj", "mlp.up_proj")
    with pytest.raises(EftnasError, match="not a supported decoder"):
        get_decoder_family("bert")


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_full_subnetwork_equals_stock_model(kind, attn):
    model = tiny_decoder(kind, attn_implementation=attn)
    batch = token_batch()
    with torch.no_grad():
        ref = model(**batch).logits
    ref_tokens = greedy(model, batch)
    supernet = DecoderSuperNetwork(model)
    assert all(type(layer).__name__ == "ElasticDecoderLayer" for layer in supernet.layers)
    with torch.no_grad():
        assert max_diff(supernet(**batch).logits, ref, batch["attention_mask"]) <= 1e-5
    assert torch.equal(greedy(model, batch), ref_tokens)


@pytest.mark.parametrize("kind", ["llama", "qwen2-sliding"])
def test_cached_generation_of_a_skipping_subnetwork_equals_recomputation(kind):
    """KV cache with dropped attention blocks (layer 0 included) gives the tokens of full recomputation."""
    supernet = DecoderSuperNetwork(tiny_decoder(kind))
    supernet.set_subnet(SKIPPING)
    batch = token_batch()
    assert torch.equal(greedy(supernet.model, batch), greedy(supernet.model, batch, use_cache=False))


def test_skipped_blocks_are_the_identity():
    model = tiny_decoder("llama")
    supernet = DecoderSuperNetwork(model)
    supernet.set_subnet(SubnetConfig(heads=[0, 0, 0], ffn=[0, 0, 0]))
    ids = token_batch(batch=1)["input_ids"]
    with torch.no_grad():
        expected = model.lm_head(model.model.norm(model.model.embed_tokens(ids)))
        assert torch.equal(supernet(input_ids=ids).logits, expected)


def test_gradients_reach_only_the_active_prefix_of_shared_weights():
    supernet = DecoderSuperNetwork(tiny_decoder("qwen2"))
    supernet.set_subnet(PARTIAL)
    ids = token_batch(batch=2)["input_ids"]
    supernet(input_ids=ids, labels=ids).loss.backward()
    layer = supernet.layers[0]  # 1 of 2 KV groups (2 query heads of 16), 17 MLP neurons
    q, k, o = layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.o_proj
    assert q.weight.grad[:32].abs().sum() > 0 and q.weight.grad[32:].abs().sum() == 0
    assert k.bias.grad[:16].abs().sum() > 0 and k.bias.grad[16:].abs().sum() == 0
    assert o.weight.grad[:, 32:].abs().sum() == 0
    up = layer.mlp.up_proj.weight.grad
    assert up[:17].abs().sum() > 0 and up[17:].abs().sum() == 0
    assert supernet.layers[2].mlp.down_proj.weight.grad is None  # dropped MLP block


def test_subnet_is_validated_against_the_decoder():
    supernet = DecoderSuperNetwork(tiny_decoder("llama"))
    with pytest.raises(SubnetConfigError, match="3 KV groups > 2"):
        supernet.set_subnet(SubnetConfig(heads=[3, 2, 2], ffn=[96] * 3))
    with pytest.raises(SubnetConfigError, match="MLP width 97"):
        supernet.set_subnet(SubnetConfig(heads=[2] * 3, ffn=[97, 96, 96]))
    with pytest.raises(SubnetConfigError, match="layers"):
        supernet.set_subnet(SubnetConfig(heads=[2] * 2, ffn=[96] * 2))
    with supernet.activate(PARTIAL):
        assert [layer.active["heads"] for layer in supernet.layers] == [1, 2, 1]
    assert supernet.active == DecoderGeometry.from_config(supernet.model.config).full_subnet()


@pytest.mark.parametrize("kind", ["llama-bias-tied", "qwen2"])
def test_permuting_kv_groups_and_mlp_neurons_keeps_the_function(kind):
    model = tiny_decoder(kind)
    batch = token_batch()
    with torch.no_grad():
        ref = model(**batch).logits
    before = model.model.layers[1].self_attn.k_proj.weight.clone()
    g = torch.Generator().manual_seed(3)
    for layer in range(3):
        permute_decoder_units(model, "heads", layer, [1, 0])
        permute_decoder_units(model, "ffn", layer, torch.randperm(96, generator=g))
    assert not torch.equal(before, model.model.layers[1].self_attn.k_proj.weight)
    with torch.no_grad():
        assert max_diff(model(**batch).logits, ref, batch["attention_mask"]) <= 1e-5
    with pytest.raises(EftnasError, match="permutation"):
        permute_decoder_units(model, "heads", 0, [0, 0])


def test_taylor_importance_reorders_without_changing_the_function():
    model = tiny_decoder("qwen2")
    batches = [token_batch(seed=s) for s in range(3)]
    scores = decoder_taylor_importance(model, batches)
    assert scores.heads.shape == (3, 2) and scores.ffn.shape == (3, 96) and (scores.ffn > 0).all()
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        ref = model(**batches[0]).logits
    orders = reorder_decoder_by_importance(model, scores)
    assert any(order != list(range(96)) for order in orders["ffn"])
    with torch.no_grad():
        assert max_diff(model(**batches[0]).logits, ref, batches[0]["attention_mask"]) <= 1e-5
    after = decoder_taylor_importance(model, batches)  # the reordered model ranks its units first to last
    for dim in ("heads", "ffn"):
        values = getattr(after, dim)
        assert torch.allclose(values, values.sort(dim=1, descending=True).values, rtol=1e-4)
    magnitude = decoder_magnitude_importance(model)
    assert magnitude.ffn.shape == (3, 96) and magnitude.criterion == "magnitude"


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("subnet", [SKIPPING, PARTIAL, SHALLOW, EMPTY], ids=["skipping", "partial", "shallow", "empty"])
def test_sliced_decoder_reloads_and_generates_like_the_supernet(tmp_path, kind, subnet):
    supernet = DecoderSuperNetwork(tiny_decoder(kind))
    supernet.set_subnet(subnet)
    batch = token_batch()
    with torch.no_grad():
        ref = supernet(**batch).logits
    ref_tokens = greedy(supernet.model, batch)
    dense = slice_decoder(supernet, subnet)
    out = save_sliced_decoder(dense, tmp_path / "dense")
    assert (out / "modeling_eftnas_decoder.py").is_file()
    reloaded = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True).eval()
    assert type(reloaded).__name__ == type(dense).__name__
    for model in (dense, reloaded, load_sliced_decoder(out).eval()):
        with torch.no_grad():
            assert max_diff(model(**batch).logits, ref, batch["attention_mask"]) <= 1e-5
        assert torch.equal(greedy(model, batch), ref_tokens)
    names = dict(reloaded.named_parameters())
    kept = [i for i in range(3) if subnet.heads[i] or subnet.ffn[i]] or [0]  # one empty layer counts the cache
    assert reloaded.config.num_hidden_layers == len(kept) == len(reloaded.model.layers)
    for i, (groups, width) in enumerate(zip(*(([subnet.heads[k] for k in kept], [subnet.ffn[k] for k in kept])))):
        q = names.get(f"model.layers.{i}.self_attn.q_proj.weight")
        assert (q is None) == (groups == 0) and (groups == 0 or q.shape[0] == groups * 2 * 16)
        assert (f"model.layers.{i}.input_layernorm.weight" in names) == (groups > 0)
        up = names.get(f"model.layers.{i}.mlp.up_proj.weight")
        assert (up is None) == (width == 0) and (width == 0 or up.shape[0] == width)
    full = sum(p.numel() for p in supernet.model.parameters())
    assert sum(p.numel() for p in reloaded.parameters()) < full


def test_slicing_refuses_a_sliced_model_and_bad_subnets():
    supernet = DecoderSuperNetwork(tiny_decoder("llama"))
    dense = slice_decoder(supernet, PARTIAL)
    with pytest.raises(EftnasError, match="sliced sub-network"):
        slice_decoder(dense, PARTIAL)
    with pytest.raises(EftnasError, match="sliced sub-network"):
        DecoderSuperNetwork(dense)
    with pytest.raises(SubnetConfigError):
        slice_decoder(supernet, SubnetConfig(heads=[3, 1, 1], ffn=[1, 1, 1]))


@pytest.mark.parametrize("kind", ["llama-bias-tied", "qwen2-sliding"])
def test_openvino_stateful_export_generates_like_pytorch(tmp_path, kind):
    pytest.importorskip("optimum.intel")
    from optimum.intel import OVModelForCausalLM

    from exporters.openvino import read_metadata
    from exporters.openvino_decoder import export_decoder_openvino

    supernet = DecoderSuperNetwork(tiny_decoder(kind))
    subnet = SubnetConfig(heads=[0, 1, 1], ffn=[0, 0, 60])  # uniform attention; layer 0 removed, an MLP dropped
    supernet.set_subnet(subnet)
    batch = {"input_ids": token_batch(batch=1, seq=10)["input_ids"]}
    ref_tokens = greedy(supernet.model, batch)
    with torch.no_grad():
        ref = supernet(**batch).logits
    sliced = save_sliced_decoder(slice_decoder(supernet, subnet), tmp_path / "dense")
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}
    fp32_xml = export_decoder_openvino(sliced, tmp_path / "ov")
    assert read_metadata(fp32_xml)["weights"] == "fp32"
    ov_model = OVModelForCausalLM.from_pretrained(tmp_path / "ov", ov_config=f32)
    assert ov_model.stateful
    assert torch.equal(greedy(ov_model, batch), ref_tokens)
    assert (ov_model(**batch, attention_mask=torch.ones_like(batch["input_ids"])).logits - ref).abs().max() <= 1e-4

    int8_xml = export_decoder_openvino(sliced, tmp_path / "ov8", int8=True)
    assert int8_xml.with_suffix(".bin").stat().st_size < 0.5 * fp32_xml.with_suffix(".bin").stat().st_size
    int8_model = OVModelForCausalLM.from_pretrained(tmp_path / "ov8", ov_config=f32)
    logits = int8_model(**batch, attention_mask=torch.ones_like(batch["input_ids"])).logits
    assert (logits - ref).abs().max() < 0.1 * ref.abs().max()
    assert greedy(int8_model, batch).shape == ref_tokens.shape

    int4_xml = export_decoder_openvino(sliced, tmp_path / "ov4", weights="int4")
    recorded = read_metadata(int4_xml)
    assert recorded["weights"] == "int4" and recorded["weight_compression"]["group_size"] == 128
    assert int4_xml.with_suffix(".bin").stat().st_size < int8_xml.with_suffix(".bin").stat().st_size
    int4_model = OVModelForCausalLM.from_pretrained(tmp_path / "ov4", ov_config=f32)
    assert greedy(int4_model, batch).shape == ref_tokens.shape


def test_openvino_export_refuses_per_layer_attention(tmp_path):
    from exporters.openvino_decoder import export_decoder_openvino

    supernet = DecoderSuperNetwork(tiny_decoder("llama"))
    for subnet in (PARTIAL, SKIPPING):  # KV groups differ per layer; an attention block dropped under an MLP
        sliced = save_sliced_decoder(slice_decoder(supernet, subnet), tmp_path / str(subnet.heads))
        with pytest.raises(EftnasError, match="same non-zero number in every layer"):
            export_decoder_openvino(sliced, tmp_path / "ov")


def test_sliced_decoder_directory_must_name_only_the_toolkits_code(tmp_path):
    import json

    from eftnas_deploy.supernet.decoder_slicing import check_decoder_dir

    out = save_sliced_decoder(slice_decoder(DecoderSuperNetwork(tiny_decoder("qwen2")), PARTIAL), tmp_path / "d")
    assert check_decoder_dir(out).eftnas_layers == [0, 1, 2]
    config = json.loads((out / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "evil.Model"}
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(EftnasError, match="auto_map"):
        load_sliced_decoder(out)


def test_supernetwork_trains_with_gradient_checkpointing_and_saves_as_a_plain_model(tmp_path):
    model = tiny_decoder("llama")
    supernet = DecoderSuperNetwork(model)
    supernet.set_subnet(PARTIAL)
    ids = token_batch(batch=2)["input_ids"]
    model.train()
    supernet(input_ids=ids, labels=ids).loss.backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.gradient_checkpointing_enable()
    supernet(input_ids=ids, labels=ids).loss.backward()
    checkpointed = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert plain.keys() == checkpointed.keys()
    assert all(torch.allclose(plain[n], checkpointed[n], atol=1e-6) for n in plain)
    model.gradient_checkpointing_disable()
    model.eval()
    model.save_pretrained(tmp_path / "super")
    reloaded = DecoderSuperNetwork(AutoModelForCausalLM.from_pretrained(tmp_path / "super").eval())
    assert type(reloaded.model).__name__ == "LlamaForCausalLM"
    reloaded.set_subnet(PARTIAL)
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids=ids).logits, supernet(input_ids=ids).logits)
