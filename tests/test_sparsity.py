"""Wanda pruning (unstructured and 2:4) and the sparsity-preserving merge of elastic LoRA adapters."""

from __future__ import annotations

import copy

import pytest
import torch

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.lora import attach_lora
from eftnas_deploy.sparsity import keep_mask, masks_from_weights, wanda_prune, wanda_scores
from tests.conftest import SHARED_DATA, outputs_of, random_inputs, tiny_model
from tests.test_lora import SMALL, _randomize


def _calibration():
    return [random_inputs(batch=4, seq=16, seed=s) for s in range(3)]


def test_keep_mask_prunes_the_lowest_scores_per_row():
    scores = torch.tensor([[4.0, 1.0, 3.0, 2.0, 8.0, 5.0, 7.0, 6.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]])
    mask = keep_mask(scores, sparsity=0.5)
    assert mask.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1, 1]]
    nm = keep_mask(scores, pattern=(2, 4))
    assert nm.tolist() == [[1, 0, 1, 0, 1, 0, 1, 0], [0, 0, 1, 1, 0, 0, 1, 1]]
    assert keep_mask(scores, sparsity=0.25).sum(1).tolist() == [6, 6]
    with pytest.raises(EftnasError, match="pattern: 2:3"):
        keep_mask(scores, pattern=(2, 3))


def test_wanda_scores_use_calibration_activations_layer_by_layer():
    model = tiny_model(seed=2, **SMALL)  # a seed where layer 1's Q mask depends on layer 0 being pruned first
    original = copy.deepcopy(model)
    batches = _calibration()
    result = wanda_prune(model, batches, sparsity=0.5)
    assert len(result.masks) == 2 * 6 and result.sparsity == pytest.approx(0.5)
    assert all(v == pytest.approx(0.5) for v in result.report.values())
    for name, mask in result.masks.items():
        weight = model.get_submodule(name).weight
        assert torch.equal(weight != 0, mask)
        assert (mask.sum(1) == weight.shape[1] // 2).all()  # per output row
    # Reference: layer i's Q/K/V input is hidden_states[i] of the pruned model (earlier layers pruned first),
    # over the non-padding tokens only.
    with torch.no_grad():
        states = [model(**b, output_hidden_states=True).hidden_states for b in batches]
    for i in range(2):
        x = torch.cat([s[i][b["attention_mask"].bool()] for s, b in zip(states, batches)])
        for proj in ("query", "key", "value"):
            name = f"bert.encoder.layer.{i}.attention.self.{proj}"
            expected = keep_mask(wanda_scores(original.get_submodule(name).weight, x.norm(dim=0)), 0.5)
            assert torch.equal(result.masks[name], expected), name


def test_two_four_sparsity_on_a_model():
    model = tiny_model(seed=1, **SMALL)
    result = wanda_prune(model, _calibration(), pattern=(2, 4))
    for name, mask in result.masks.items():
        groups = (model.get_submodule(name).weight != 0).reshape(mask.shape[0], -1, 4)
        assert (groups.sum(-1) == 2).all(), name
    assert masks_from_weights(model).keys() == result.masks.keys()


def test_merge_into_a_sparse_base_keeps_exactly_its_zeros():
    base = tiny_model(seed=0, **SMALL)
    result = wanda_prune(base, _calibration(), sparsity=0.5)
    elastic = attach_lora(copy.deepcopy(base), max_rank=8)
    _randomize(elastic)
    elastic.model.eval()
    subnet = SubnetConfig(heads=[4, 4], ffn=[64, 64], lora_qkv=[8, 3], lora_up=[2, 0], lora_down=[5, 8])
    inputs = random_inputs()

    unmasked = elastic.merged_model(subnet)
    assert not all(
        torch.equal(unmasked.get_submodule(n).weight != 0, m) for n, m in result.masks.items()
    )  # a plain merge fills the zeros

    elastic.set_masks(result.masks)
    merged = elastic.merged_model(subnet).eval()
    for name, mask in result.masks.items():
        assert torch.equal(merged.get_submodule(name).weight != 0, mask), name
    with elastic.activate(subnet):
        unmerged = outputs_of(elastic.model, inputs)  # base + masked sliced update, not merged
    assert torch.allclose(outputs_of(merged, inputs), unmerged, atol=1e-5, rtol=0)
    # the masked update is what the adapter computes in training too: pruned entries get no gradient path
    elastic.model.train()
    with elastic.activate(subnet):
        elastic.model(**inputs, labels=torch.tensor([0, 1, 0])).loss.backward()
    assert elastic.modules["bert.encoder.layer.0.attention.self.query"].lora_A["default"].weight.grad.abs().sum() > 0
    with pytest.raises(EftnasError, match="mask shape"):
        elastic.set_masks({"bert.encoder.layer.0.output.dense": torch.ones(3, 3, dtype=torch.bool)})


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data not found")
def test_prune_then_nls_train_then_merge_stays_sparse(tmp_path):
    """Wanda 50% -> NLS sandwich training with masked updates (project trainer) -> merged model as sparse."""
    from eftnas_deploy.core.space import SearchSpace
    from eftnas_deploy.evaluation import pad_batch
    from eftnas_deploy.training import SuperNetTrainer, collator_for, training_arguments
    from tests.training_utils import mean_task_loss, sst2_split, tokenizer

    split = sst2_split(rows=48, max_length=24)
    model = tiny_model(seed=0, **{**SMALL, "vocab_size": 30522, "max_position_embeddings": 128})
    rows = list(split.features)
    calibration = [pad_batch(rows[i : i + 8], 0) for i in (0, 8)]  # padded: Wanda skips the padding tokens
    result = wanda_prune(model, calibration, sparsity=0.5)
    elastic = attach_lora(model, max_rank=8)
    elastic.set_masks(result.masks)
    space = SearchSpace(heads=[[4]] * 2, ffn=[[64]] * 2, **{d: [[8, 4, 2]] * 2 for d in elastic.dimensions})
    before = mean_task_loss(elastic, space.smallest(), split)
    SuperNetTrainer(
        supernet=elastic,
        search_space=space,
        args=training_arguments(tmp_path, max_steps=12, per_device_train_batch_size=16, learning_rate=1e-2),
        train_dataset=split.features,
        data_collator=collator_for(split, tokenizer()),
    ).train()
    assert mean_task_loss(elastic, space.smallest(), split) < before - 0.02
    merged = elastic.merged_model(space.smallest())
    for name, mask in result.masks.items():
        assert torch.equal(merged.get_submodule(name).weight != 0, mask), name
