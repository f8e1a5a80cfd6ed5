import random
import statistics

import pytest
import torch
from transformers import AutoTokenizer

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.data import get_task, load_split, prepare_split
from eftnas_deploy.families.models import build_model
from eftnas_deploy.importance.scores import (
    ImportanceError,
    ImportanceScores,
    magnitude_importance,
    movement_importance,
    reorder_by_importance,
    weights_fingerprint,
)
from eftnas_deploy.space.klein import UnitSelection
from eftnas_deploy.supernet.slicing import slice_subnet
from eftnas_deploy.training import collator_for
from tests.conftest import MODEL_KINDS, outputs_of, random_inputs, tiny_model

LAYERS, HEADS, FFN = 2, 4, 128


def _batches(split, tokenizer, batch_size, shuffle_seed=None):
    """Padded batches in the row order the thresholds below were calibrated on (random.Random(seed).shuffle)."""
    order = list(range(len(split.features)))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    features, collate = split.features.select(order), collator_for(split, tokenizer)
    return [
        collate([features[j] for j in range(i, min(i + batch_size, len(order)))])
        for i in range(0, len(order), batch_size)
    ]


@pytest.fixture(scope="module")
def sst2_run(request):
    """A tiny BERT trained from scratch on an SST-2 subsample while accumulating movement importance."""
    from tests.conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip("shared data not found")
    tokenizer = AutoTokenizer.from_pretrained(SHARED_DATA / "tokenizers/bert-base-uncased")
    sst2 = get_task("sst2")
    train_rows = load_split(sst2, SHARED_DATA / "glue/SST-2/train.tsv").select(range(9600))
    dev_rows = load_split(sst2, SHARED_DATA / "glue/SST-2/dev.tsv").select(range(512))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster and deterministic
    try:
        torch.manual_seed(0)
        model = build_model(
            "bert", vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=LAYERS,
            num_attention_heads=HEADS, intermediate_size=FFN, max_position_embeddings=64,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        )  # fmt: skip
        train = _batches(prepare_split(sst2, train_rows, tokenizer, 48, train=True), tokenizer, 32, shuffle_seed=0)
        scores = movement_importance(model, train, steps=300, lr=1e-3, progress=False)
    finally:
        torch.set_num_threads(threads)
    dev = _batches(prepare_split(sst2, dev_rows, tokenizer, 48), tokenizer, 128)
    return model, scores, dev


def test_movement_importance_is_finite_informative_shaped_and_fingerprinted(sst2_run):
    model, scores, _ = sst2_run
    assert scores.heads.shape == (LAYERS, HEADS) and scores.ffn.shape == (LAYERS, FFN)
    assert torch.isfinite(scores.heads).all() and torch.isfinite(scores.ffn).all()
    assert scores.heads.std() > 0 and scores.ffn.std() > 0
    assert scores.metadata["last_loss"] < scores.metadata["first_loss"]
    assert scores.fingerprint == weights_fingerprint(model) != scores.metadata["source_fingerprint"]
    scores.check_model(model)


@torch.no_grad()
def _dev_loss(model, dev) -> float:
    model.eval()
    total = sum(float(model(**b).loss) * len(b["labels"]) for b in dev)
    return total / sum(len(b["labels"]) for b in dev)


def _loss_keeping(model, dev, flat_heads) -> float:
    """Dev loss of the model keeping only the given (layer * HEADS + head) heads, all FFN neurons."""
    heads = [[i % HEADS for i in flat_heads if i // HEADS == layer] for layer in range(LAYERS)]
    clone, subnet = UnitSelection(heads=heads, ffn=[range(FFN)] * LAYERS).materialize(model)
    return _dev_loss(slice_subnet(clone, subnet), dev)


@pytest.mark.parametrize("k", [2, 4])
def test_top_k_heads_lose_less_than_random_k_heads(sst2_run, k):
    model, _, dev = sst2_run
    scores = magnitude_importance(model)
    top = torch.argsort(scores.heads.flatten(), descending=True)[:k].tolist()
    rng = random.Random(0)
    random_losses = [_loss_keeping(model, dev, rng.sample(range(LAYERS * HEADS), k)) for _ in range(8)]
    top_loss = _loss_keeping(model, dev, top)
    # By a margin: clearly below the random average and below (almost) every single random draw.
    assert top_loss < statistics.mean(random_losses) - 0.01, (top_loss, random_losses)
    assert sum(top_loss < loss for loss in random_losses) >= 7, (top_loss, random_losses)


def test_magnitude_is_the_l1_norm_of_each_group():
    model = tiny_model()
    scores = magnitude_importance(model)
    layer = model.bert.encoder.layer[1]
    attn, rows = layer.attention.self, slice(2 * 16, 3 * 16)
    expected = sum(lin.weight[rows].abs().sum() for lin in (attn.query, attn.key, attn.value))
    expected += layer.attention.output.dense.weight[:, rows].abs().sum()
    torch.testing.assert_close(scores.heads[1, 2], expected.float(), rtol=1e-5, atol=1e-5)
    neuron = layer.intermediate.dense.weight[7].abs().sum() + layer.output.dense.weight[:, 7].abs().sum()
    torch.testing.assert_close(scores.ffn[1, 7], neuron.float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model_type, task", MODEL_KINDS)
def test_reorder_by_importance_preserves_the_function_and_sorts(model_type, task):
    model = tiny_model(model_type, task)
    inputs = random_inputs()
    before = outputs_of(model, inputs)
    scores = magnitude_importance(model)
    reordered = reorder_by_importance(model, scores)
    assert (outputs_of(model, inputs) - before).abs().max().item() <= 1e-5
    assert reordered.is_sorted() and not scores.is_sorted()
    torch.testing.assert_close(reordered.heads.sort(dim=1).values, scores.heads.sort(dim=1).values)
    assert reordered.fingerprint == weights_fingerprint(model) != scores.fingerprint
    torch.testing.assert_close(magnitude_importance(model).heads, reordered.heads, rtol=1e-5, atol=1e-5)
    with pytest.raises(ImportanceError, match="fingerprint"):
        scores.check_model(model)  # the old scores describe the old order


def test_importance_file_roundtrip_and_refusals(tmp_path):
    model = tiny_model()
    scores = magnitude_importance(model)
    scores.save(tmp_path / "imp.safetensors")
    loaded = ImportanceScores.load(tmp_path / "imp.safetensors")
    torch.testing.assert_close(loaded.ffn, scores.ffn, rtol=0, atol=0)
    assert loaded.geometry == scores.geometry and loaded.criterion == "magnitude"
    loaded.check_model(model)
    with pytest.raises(ImportanceError, match="fingerprint"):
        loaded.check_model(tiny_model(seed=1))
    with pytest.raises(ImportanceError, match=r"another model geometry.*num_layers: 3 != 2"):
        loaded.check_model(tiny_model(num_hidden_layers=2))
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(ImportanceError, match="not a safetensors importance file"):
        ImportanceScores.load(tmp_path / "bad.safetensors")
    with pytest.raises(ImportanceError, match="heads: scores have shape"):
        ImportanceScores(scores.heads[:1], scores.ffn, "movement", scores.geometry, scores.fingerprint)
    with pytest.raises(EftnasError, match="steps: must be positive"):
        movement_importance(model, [], steps=0)
    with pytest.raises(EftnasError, match="no training batches"):
        movement_importance(model, [], progress=False)


def test_taylor_criterion_is_non_negative_and_informative_shaped():
    model = tiny_model()
    g = torch.Generator().manual_seed(0)
    batches = [
        {"input_ids": torch.randint(5, 120, (8, 12), generator=g), "labels": torch.randint(0, 2, (8,), generator=g)}
        for _ in range(4)
    ]
    scores = movement_importance(model, batches, steps=6, lr=1e-3, progress=False, criterion="taylor")
    assert scores.criterion == "taylor"
    assert (scores.heads >= 0).all() and (scores.ffn >= 0).all()
    assert scores.heads.std() > 0 and scores.ffn.std() > 0
    with pytest.raises(EftnasError, match="criterion"):
        movement_importance(model, batches, steps=1, progress=False, criterion="magnitude")


def _planted_model():
    """A tiny BERT where, in every layer, half the heads and FFN neurons are scaled to ~nothing (planted)."""
    model = tiny_model(num_labels=2, seed=3)
    geometry_heads, head_dim = (
        model.config.num_attention_heads,
        model.config.hidden_size // model.config.num_attention_heads,
    )
    planted_heads, planted_ffn = [], []
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            weak_heads = torch.randperm(geometry_heads, generator=g)[: geometry_heads // 2]
            weak_ffn = torch.randperm(layer.intermediate.dense.out_features, generator=g)[
                : layer.intermediate.dense.out_features // 2
            ]
            for h in weak_heads.tolist():
                cols = slice(h * head_dim, (h + 1) * head_dim)
                layer.attention.self.value.weight[cols] *= 0.01
                layer.attention.output.dense.weight[:, cols] *= 0.01
            layer.intermediate.dense.weight[weak_ffn] *= 0.01
            layer.output.dense.weight[:, weak_ffn] *= 0.01
            planted_heads.append(set(range(geometry_heads)) - set(weak_heads.tolist()))
            planted_ffn.append(set(range(layer.intermediate.dense.out_features)) - set(weak_ffn.tolist()))
    return model, planted_heads, planted_ffn


def test_default_criterion_finds_planted_units_far_better_than_random():
    from eftnas_deploy.app.pipeline.config import ImportanceConfig

    model, strong_heads, strong_ffn = _planted_model()
    batches = []
    for seed in range(6):
        inputs = random_inputs(batch=16, seq=16, seed=seed)
        batches.append({**inputs, "labels": torch.randint(0, 2, (16,), generator=torch.Generator().manual_seed(seed))})
    scores = movement_importance(
        model, batches, steps=12, lr=1e-4, criterion=ImportanceConfig().criterion, progress=False
    )

    def recall(ranking: torch.Tensor, strong: list[set[int]]) -> float:
        hits = [
            len(set(row.argsort(descending=True)[: len(s)].tolist()) & s) / len(s) for row, s in zip(ranking, strong)
        ]
        return sum(hits) / len(hits)

    random_recall = recall(torch.rand(scores.ffn.shape, generator=torch.Generator().manual_seed(0)), strong_ffn)
    assert recall(scores.ffn, strong_ffn) >= 0.9 > random_recall + 0.3
    assert recall(scores.heads, strong_heads) >= 0.9
