"""Sub-network evaluation with shared weights, task metrics, and the SQuAD path end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data import get_task, load_split, prepare_split
from eftnas_deploy.evaluation import evaluate, pad_batch, qa_predictions
from eftnas_deploy.metrics.squad import normalize_answer, squad_metrics
from eftnas_deploy.metrics.task_metrics import classification_metrics
from eftnas_deploy.supernet.slicing import slice_subnet
from eftnas_deploy.training import SuperNetTrainer, collator_for, training_arguments
from tests.conftest import SHARED_DATA
from tests.squad_data import write_squad_json
from tests.training_utils import mean_task_loss, small_space, sst2_split, tiny_supernet, tokenizer

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data not found")


def test_classification_metrics_match_known_values():
    assert classification_metrics("accuracy", np.array([1, 0, 1, 1]), np.array([1, 1, 1, 0])) == {"accuracy": 0.5}
    both = classification_metrics("accuracy_f1", np.array([1, 0, 1, 1]), np.array([1, 1, 1, 0]))
    assert both["f1"] == pytest.approx(2 / 3) and both["accuracy_f1"] == pytest.approx((0.5 + 2 / 3) / 2)
    mcc = classification_metrics("matthews", np.array([1, 0, 1, 0]), np.array([1, 0, 1, 0]))
    assert mcc["matthews_correlation"] == pytest.approx(1.0)
    corr = classification_metrics("pearson_spearman", np.array([0.1, 0.4, 0.3]), np.array([1.0, 4.0, 3.0]))
    assert corr["pearson"] == pytest.approx(1.0) and corr["spearmanr"] == pytest.approx(1.0)


def test_squad_metric_normalisation_and_no_answer():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    refs = {"a": ["the Himalayas", "Himalayas"], "b": [], "c": ["100 degrees Celsius"]}
    preds = {"a": "Himalayas.", "b": "", "c": "100 degrees"}
    m = squad_metrics(preds, refs)
    assert m["exact_match"] == pytest.approx(200 / 3)
    assert m["f1"] == pytest.approx(100 * (1 + 1 + 0.8) / 3)
    assert m["NoAns_exact"] == 100.0 and m["HasAns_exact"] == 50.0
    assert squad_metrics({"b": "something"}, {"b": []})["exact_match"] == 0.0


@needs_data
def test_evaluate_uses_shared_weights_and_matches_the_sliced_model():
    supernet = tiny_supernet(seed=3)
    split = sst2_split(rows=40, max_length=24, file="dev.tsv")
    subnet = SubnetConfig(heads=(3, 0), ffn=(64, 32))
    before = {k: v.clone() for k, v in supernet.model.state_dict().items()}
    result = evaluate(supernet, subnet, split, batch_size=16)
    assert supernet.active.is_full(supernet.geometry)
    assert all(torch.equal(v, before[k]) for k, v in supernet.model.state_dict().items())

    dense = slice_subnet(supernet, subnet).eval()
    rows = list(split.features)
    with torch.no_grad():
        logits = dense(**pad_batch(rows, 0)).logits
    expected = classification_metrics("accuracy", logits.argmax(-1).numpy(), np.array(split.features["labels"]))
    assert result["accuracy"] == pytest.approx(expected["accuracy"])
    assert result["score"] == result["accuracy"]


@needs_data
def test_qa_windows_locate_answers_and_oracle_logits_score_100(tmp_path):
    task = get_task("squad_v2")
    data = load_split(task, write_squad_json(tmp_path, impossible=True))
    tok = tokenizer()
    train = prepare_split(task, data, tok, max_length=32, stride=8, train=True)
    assert len(train.features) > len(data)  # long contexts become several windows
    found = set()
    for row in train.features:
        s, e = row["start_positions"], row["end_positions"]
        if s:
            found.add(normalize_answer(tok.decode(row["input_ids"][s : e + 1])))
    expected = {normalize_answer(a["text"][0]) for a in data["answers"] if a["text"]}
    assert found == expected

    evals = prepare_split(task, data, tok, max_length=32, stride=8)
    answers = dict(zip(data["id"], data["answers"]))
    starts, ends = [], []
    for row in evals.features:  # oracle logits: peak on the answer when a window holds it, else on [CLS]
        n = len(row["input_ids"])
        start, end = np.zeros(n), np.zeros(n)
        ans = answers[row["example_id"]]
        span = None
        if ans["text"]:
            a0, a1 = ans["answer_start"][0], ans["answer_start"][0] + len(ans["text"][0])
            toks = [i for i, o in enumerate(row["offset_mapping"]) if o is not None and o[0] < a1 and o[1] > a0]
            if toks and row["offset_mapping"][toks[0]][0] <= a0 and row["offset_mapping"][toks[-1]][1] >= a1:
                span = (toks[0], toks[-1])
        if span:
            start[span[0]], end[span[1]] = 10.0, 10.0
        else:
            start[0], end[0] = 5.0, 5.0
        starts.append(start)
        ends.append(end)
    preds = qa_predictions(evals, starts, ends, allow_no_answer=True)
    assert squad_metrics(preds, {k: v["text"] for k, v in answers.items()})["exact_match"] == 100.0


@needs_data
def test_squad_trains_and_evaluates(tmp_path):
    task = get_task("squad")
    data = load_split(task, write_squad_json(tmp_path, impossible=False))
    tok = tokenizer()
    train = prepare_split(task, data, tok, max_length=48, stride=16, train=True)
    evals = prepare_split(task, data, tok, max_length=48, stride=16)
    supernet = tiny_supernet("question-answering")
    space = small_space(supernet)
    before = mean_task_loss(supernet, space.smallest(), train)
    trainer = SuperNetTrainer(
        supernet=supernet,
        search_space=space,
        strategy="full",
        args=training_arguments(tmp_path / "run", max_steps=15, per_device_train_batch_size=8, learning_rate=3e-3),
        train_dataset=train.features,
        data_collator=collator_for(train, tok),
    )
    trainer.train()
    assert mean_task_loss(supernet, space.smallest(), train) < before
    for subnet in (space.largest(), space.smallest()):
        result = evaluate(supernet, subnet, evals)
        assert {"exact_match", "f1", "score"} <= set(result)
        assert 0.0 <= result["exact_match"] <= result["f1"] <= 100.0
