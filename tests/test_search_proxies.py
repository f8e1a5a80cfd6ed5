"""The search's held-out metrics: the task score, or exp(-divergence) from the largest sub-network's outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from eftnas_deploy import SearchSpace, SubnetConfig, SuperNetwork
from eftnas_deploy.data import get_task, prepare_split
from eftnas_deploy.data.synthetic import make_dataset, train_tokenizer
from eftnas_deploy.evaluation import evaluate, predict_logits
from eftnas_deploy.search import proxies
from eftnas_deploy.search.proxies import HeldOutObjective, output_divergence
from tests.conftest import tiny_model


@pytest.fixture(scope="module")
def net_and_rows():
    import datasets

    data = make_dataset(48, seed=3)
    tokenizer = train_tokenizer([e.text for e in data], vocab_size=120)
    rows = datasets.Dataset.from_dict({"sentence": [e.text for e in data], "label": [e.label for e in data]})
    split = prepare_split(get_task("sst2"), rows, tokenizer, 32)
    return SuperNetwork(tiny_model(vocab_size=tokenizer.vocab_size)), split


def test_divergence_is_the_kl_of_the_softmax_for_classes_and_the_squared_error_for_regression():
    rng = np.random.default_rng(0)
    ref, out = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    expected = F.kl_div(
        torch.log_softmax(torch.tensor(out), -1), torch.log_softmax(torch.tensor(ref), -1),
        reduction="batchmean", log_target=True,
    )  # fmt: skip
    assert output_divergence([list(ref)], [list(out)], "classification") == pytest.approx(float(expected), rel=1e-9)
    assert output_divergence([list(ref)], [list(ref)], "classification") == pytest.approx(0.0, abs=1e-12)
    ref1, out1 = ref[:, :1], out[:, :1]
    assert output_divergence([list(ref1)], [list(out1)], "regression") == pytest.approx(np.mean((ref1 - out1) ** 2))
    # QA: start and end positions count equally
    two = output_divergence([list(ref), list(out)], [list(out), list(out)], "qa")
    assert two == pytest.approx(float(expected) / 2, rel=1e-9)


def test_distillation_metric_is_one_for_the_largest_subnet_and_exp_minus_kl_below_it(net_and_rows):
    net, split = net_and_rows
    space = SearchSpace(heads=[[4, 2, 1]] * 3, ffn=[[128, 64, 0]] * 3)
    metric = HeldOutObjective(net, split, "distillation", space.largest())
    assert metric(space.largest()) == pytest.approx(1.0, abs=1e-12)
    small = space.smallest()
    ref = torch.tensor(np.stack(predict_logits(net, space.largest(), split)[0]))
    out = torch.tensor(np.stack(predict_logits(net, small, split)[0]))
    kl = F.kl_div(torch.log_softmax(out, -1), torch.log_softmax(ref, -1), reduction="batchmean", log_target=True)
    assert metric(small) == pytest.approx(math.exp(-float(kl)), rel=1e-6)
    assert metric(small) < 1.0
    score = HeldOutObjective(net, split, "score", space.largest())
    assert score(small) == evaluate(net, small, split)["score"] == metric.task_score(small)


def test_the_task_score_of_an_evaluated_subnet_comes_from_its_evaluation_pass(net_and_rows, monkeypatch):
    net, split = net_and_rows
    space = SearchSpace(heads=[[4, 2, 1]] * 3, ffn=[[128, 64, 0]] * 3)
    metric = HeldOutObjective(net, split, "distillation", space.largest())
    passes = []
    monkeypatch.setattr(proxies, "predict_logits", lambda *a, **k: passes.append(1) or predict_logits(*a, **k))
    metric(space.smallest())
    assert metric.task_score(space.smallest()) == evaluate(net, space.smallest(), split)["score"]
    assert len(passes) == 1  # the score came from the metric's own forward pass
    metric.task_score(space.middle())
    assert len(passes) == 2


def test_an_unknown_metric_is_refused(net_and_rows):
    net, split = net_and_rows
    with pytest.raises(ValueError, match="metric: 'loss'"):
        HeldOutObjective(net, split, "loss", SubnetConfig.full(net.geometry))
