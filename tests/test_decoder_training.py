"""Causal-LM super-network training (#15): perplexity, in-place and external-teacher KD, exact resume, text data."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from eftnas_deploy.core.errors import EftnasError, SearchSpaceError
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data.text import (
    CausalLMCollator,
    group_texts,
    read_texts,
    synthetic_corpus,
    train_causal_tokenizer,
)
from eftnas_deploy.evaluation.perplexity import perplexity
from eftnas_deploy.supernet.decoder import DecoderSuperNetwork, build_decoder
from eftnas_deploy.training import KDConfig, SuperNetTrainer, training_arguments
from eftnas_deploy.training.distill import next_token_positions, token_distill_term
from tests.training_utils import StopAt

TINY = dict(num_layers=2, num_heads=4, num_kv_heads=2, hidden_size=64, intermediate_size=96)
BLOCK = 32
SPACE = SearchSpace(heads=[[2, 1]] * 2, ffn=[[96, 48, 0]] * 2)  # smallest: 1 KV group, no MLP in either layer


@pytest.fixture(scope="module")
def corpus():
    tokenizer = train_causal_tokenizer(synthetic_corpus(800, seed=0), vocab_size=256)
    train = group_texts(synthetic_corpus(600, seed=1), tokenizer, BLOCK)
    held_out = group_texts(synthetic_corpus(100, seed=2), tokenizer, BLOCK)
    return tokenizer, train, held_out


def tiny_supernet(kind: str, tokenizer, seed: int = 0) -> DecoderSuperNetwork:
    torch.manual_seed(seed)
    return DecoderSuperNetwork(build_decoder(kind, **TINY, vocab_size=len(tokenizer)))


def _trainer(supernet, corpus, out_dir, strategy="full", teacher=None, kd=None, **args):
    tokenizer, train, _ = corpus
    defaults = dict(
        max_steps=30, per_device_train_batch_size=8, learning_rate=3e-3, logging_steps=1000, disable_tqdm=True
    )
    return SuperNetTrainer(
        supernet=supernet,
        search_space=SPACE,
        strategy=strategy,
        num_random=1,
        teacher=teacher,
        kd=kd,
        args=training_arguments(out_dir, **{**defaults, **args}),
        train_dataset=train,
        data_collator=CausalLMCollator(tokenizer.pad_token_id),
    )


def _ppl(supernet, corpus, subnet) -> float:
    tokenizer, _, held_out = corpus
    return perplexity(supernet, subnet, held_out, batch_size=16, pad_token_id=tokenizer.pad_token_id)["perplexity"]


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_perplexity_is_exp_of_the_token_weighted_nll(kind, corpus):
    tokenizer, _, held_out = corpus
    supernet = tiny_supernet(kind, tokenizer)
    subnet = SPACE.sample(random.Random(3))
    ragged = [{"input_ids": row["input_ids"][: BLOCK - 5 * i]} for i, row in enumerate(held_out.select(range(4)))]
    result = perplexity(supernet, subnet, ragged, batch_size=3, pad_token_id=tokenizer.pad_token_id)
    total, count = 0.0, 0
    with torch.no_grad(), supernet.activate(subnet):
        for row in ragged:  # one unpadded sequence at a time
            ids = torch.tensor([row["input_ids"]])
            logp = torch.log_softmax(supernet.model(input_ids=ids).logits[0, :-1].double(), -1)
            total -= logp.gather(1, ids[0, 1:, None]).sum().item()
            count += ids.shape[1] - 1
    assert result["tokens"] == count
    assert result["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-4)
    assert supernet.active == supernet.full()  # the sub-network was only active during the evaluation


@pytest.mark.parametrize(("kind", "strategy"), [("llama", "full"), ("qwen2", "sandwich")])
def test_training_lowers_perplexity_of_largest_and_smallest(kind, strategy, corpus, tmp_path):
    supernet = tiny_supernet(kind, corpus[0])
    largest, smallest = SPACE.largest(), SPACE.smallest()
    before = [_ppl(supernet, corpus, s) for s in (largest, smallest)]
    _trainer(supernet, corpus, tmp_path, strategy=strategy).train()  # full: in-place KD from the largest
    after = [_ppl(supernet, corpus, s) for s in (largest, smallest)]
    print(f"{kind} {strategy} perplexity largest/smallest before {before} after {after}")
    assert supernet.active == largest
    assert after[0] < 0.5 * before[0] and after[1] < 0.5 * before[1], (before, after)


def test_external_teacher_kd_trains(corpus, tmp_path):
    tokenizer = corpus[0]
    teacher = tiny_supernet("llama", tokenizer, seed=5)
    _trainer(teacher, corpus, tmp_path / "teacher", strategy="standard", max_steps=20).train()
    supernet = tiny_supernet("qwen2", tokenizer)
    before = _ppl(supernet, corpus, SPACE.smallest())
    trainer = _trainer(supernet, corpus, tmp_path / "student", teacher=teacher.model, max_steps=20)
    assert trainer.distill_from == "teacher"
    trainer.train()
    after = _ppl(supernet, corpus, SPACE.smallest())
    print(f"external teacher: smallest perplexity before {before} after {after}")
    assert after < 0.5 * before


def test_kd_term_is_zero_when_student_is_the_teacher(corpus, tmp_path):
    tokenizer, train, _ = corpus
    supernet = tiny_supernet("llama", tokenizer, seed=1)
    teacher = tiny_supernet("llama", tokenizer, seed=1).model  # the same weights
    trainer = _trainer(supernet, corpus, tmp_path, teacher=teacher, kd=KDConfig(task_weight=0.1))
    rows = [{"input_ids": row["input_ids"][: 20 + i]} for i, row in enumerate(train.select(range(3)))]
    batch = CausalLMCollator(tokenizer.pad_token_id)(rows)  # ragged: padding is masked out of both terms
    model = supernet.model.train()
    trainer._teacher_logits = trainer._external_teacher_logits(batch)
    loss = trainer.compute_loss(model, batch)
    with torch.no_grad():
        task = model(**batch).loss
    assert loss.item() == pytest.approx(0.1 * task.item(), rel=1e-5)


def test_token_kd_term_formula_and_positions():
    labels = torch.tensor([[5, 6, 7, -100], [8, 9, -100, -100]])
    positions = next_token_positions({"labels": labels})
    assert positions.tolist() == [[True, True, False, False], [True, False, False, False]]
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 4, 11, generator=g), torch.randn(2, 4, 11, generator=g)
    t = 2.0
    p = torch.softmax(teacher / t, -1)
    kl = (p * (p.log() - torch.log_softmax(student / t, -1))).sum(-1)  # [batch, seq]
    expected = t * t * kl[positions].mean()
    got = token_distill_term((student,), (teacher,), t, positions)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert token_distill_term((student,), (student,), t, positions).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(EftnasError, match="teacher: logits"):  # a teacher with another vocabulary
        token_distill_term((student,), (teacher[..., :7],), t, positions)


def test_decoder_space_is_validated_and_rkd_refused(corpus, tmp_path):
    supernet = tiny_supernet("llama", corpus[0])
    with pytest.raises(SearchSpaceError, match="KV groups"):
        supernet.validate_space(SearchSpace(heads=[[4, 2]] * 2, ffn=[[96]] * 2))  # 4 query heads, 2 KV groups
    with pytest.raises(EftnasError, match="rkd_weight"):
        _trainer(supernet, corpus, tmp_path, kd=KDConfig(rkd_weight=1.0))


def test_resume_matches_uninterrupted_run(corpus, tmp_path):
    args = dict(max_steps=6, save_strategy="steps", save_steps=3, seed=7)
    tokenizer = corpus[0]
    reference = tiny_supernet("qwen2", tokenizer, seed=1)
    _trainer(reference, corpus, tmp_path / "ref", **args).train()

    interrupted = tiny_supernet("qwen2", tokenizer, seed=1)
    first = _trainer(interrupted, corpus, tmp_path / "run", **args)
    first.add_callback(StopAt(3))
    first.train()
    assert first.state.global_step == 3 and (tmp_path / "run" / "checkpoint-3").is_dir()

    resumed = tiny_supernet("qwen2", tokenizer, seed=2)  # different init: the checkpoint must restore everything
    second = _trainer(resumed, corpus, tmp_path / "run", **args)
    second.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-3"))
    assert second.state.global_step == 6
    ref_state = reference.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, ref_state[name], rtol=0, atol=1e-6, msg=name)


def test_text_loader_reads_txt_and_jsonl(corpus, tmp_path):
    tokenizer = corpus[0]
    txt = tmp_path / "corpus.txt"
    txt.write_text("the movie was good\n\nthe plot is dull\n", encoding="utf-8")
    assert read_texts(txt) == ["the movie was good", "the plot is dull"]
    jsonl = tmp_path / "corpus.jsonl"
    rows = [{"text": "the cast was great", "id": 1}, {"text": "the show felt bland", "id": 2}]
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert read_texts(jsonl) == ["the cast was great", "the show felt bland"]
    assert read_texts(jsonl, limit=1) == ["the cast was great"]
    with pytest.raises(EftnasError, match="'body'"):
        read_texts(jsonl, text_column="body")
    with pytest.raises(EftnasError, match="does not exist"):
        read_texts(tmp_path / "missing.txt")
    dataset_dir = tmp_path / "dataset"  # a local dataset directory goes through datasets.load_dataset
    dataset_dir.mkdir()
    (dataset_dir / "train.jsonl").write_text(jsonl.read_text(encoding="utf-8"), encoding="utf-8")
    assert read_texts(dataset_dir, cache_dir=str(tmp_path / "cache")) == read_texts(jsonl)

    blocks = group_texts(read_texts(txt) + read_texts(jsonl), tokenizer, block_size=5)
    stream = []
    for text in read_texts(txt) + read_texts(jsonl):
        stream += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert len(blocks) == len(stream) // 5
    assert [t for b in blocks["input_ids"] for t in b] == stream[: 5 * len(blocks)]
    assert blocks["labels"] == blocks["input_ids"]
    assert tokenizer.decode(stream[:4]) == "the movie was good"


def test_decoder_search_trades_perplexity_for_predicted_ms_per_token(corpus, tmp_path):
    from eftnas_deploy.core.decoder_family import DecoderGeometry
    from eftnas_deploy.search.decoder import decoder_search_space, exportable, search_decoder
    from eftnas_deploy.search.searcher import SearchConfig
    from latency_lut.decoder_table import check_exportable

    tokenizer, _, held_out = corpus
    supernet = tiny_supernet("llama", tokenizer)
    _trainer(supernet, corpus, tmp_path / "train", max_steps=15).train()
    geometry = DecoderGeometry.from_config(supernet.model.config)
    space = decoder_search_space(geometry, ffn_widths=[96, 48, 0])

    def ms_per_token(s):  # a stand-in for a decoder LUT's prediction: fixed part + blocks
        if not any(s.heads):  # as the LUT: a model that builds no layer does not export
            raise EftnasError("heads/ffn: the sub-network builds no layer")
        return 1.0 + sum(0.5 for h in s.heads if h) + sum(f / 96 for f in s.ffn)

    summary = search_decoder(
        supernet, space, held_out.select(range(8)), tmp_path / "search", SearchConfig(algorithm="random", evals=24),
        latency={"ms_per_token": ms_per_token}, max_ms_per_token=3.0, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    chosen = SubnetConfig.from_dict(summary["chosen"]["subnet"])
    assert chosen == exportable(chosen) and ms_per_token(chosen) <= 3.0
    assert check_exportable(geometry, chosen) == geometry.num_kv_heads
    assert summary["chosen"]["perplexity"] == pytest.approx(_ppl_rows(supernet, tokenizer, held_out, chosen), rel=1e-6)
    front = summary["front"]
    assert [p["ms_per_token"] for p in front] == sorted(p["ms_per_token"] for p in front)
    assert all(any(p["subnet"]["heads"]) for p in front)  # a sub-network that builds no layer does not export
    assert (tmp_path / "search" / "perplexity_vs_latency.png").is_file()
    with pytest.raises(EftnasError, match=r"budget: .* below the smallest"):
        search_decoder(supernet, space, held_out.select(range(4)), tmp_path / "s2", SearchConfig(evals=2),
                       latency={"ms_per_token": ms_per_token}, max_ms_per_token=0.5)  # fmt: skip


def _ppl_rows(supernet, tokenizer, rows, subnet) -> float:
    return perplexity(supernet, subnet, rows.select(range(8)), pad_token_id=tokenizer.pad_token_id)["perplexity"]
