"""SuperNetTrainer: every strategy lowers the loss; external-teacher KD; resume is exact."""

from __future__ import annotations

import pytest
import torch

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.training import (
    STRATEGIES,
    KDConfig,
    SubnetSampler,
    SuperNetTrainer,
    collator_for,
    training_arguments,
)
from eftnas_deploy.training.distill import distill_term
from tests.conftest import SHARED_DATA
from tests.training_utils import StopAt, mean_task_loss, small_space, sst2_split, tiny_supernet, tokenizer

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data not found")


def _trainer(supernet, split, out_dir, strategy="sandwich", teacher=None, **args):
    space = small_space(supernet)
    defaults = dict(
        max_steps=12, per_device_train_batch_size=16, learning_rate=3e-3, logging_steps=1000, disable_tqdm=True
    )
    return SuperNetTrainer(
        supernet=supernet,
        search_space=space,
        strategy=strategy,
        num_random=1,
        teacher=teacher,
        args=training_arguments(out_dir, **{**defaults, **args}),
        train_dataset=split.features,
        data_collator=collator_for(split, tokenizer()),
    )


@pytest.fixture(scope="module")
def split():
    return sst2_split(rows=48, max_length=24)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_lowers_the_loss(strategy, split, tmp_path):
    supernet = tiny_supernet()
    space = small_space(supernet)
    before = [mean_task_loss(supernet, s, split) for s in (space.largest(), space.smallest())]
    _trainer(supernet, split, tmp_path, strategy=strategy).train()
    after = [mean_task_loss(supernet, s, split) for s in (space.largest(), space.smallest())]
    assert supernet.active == space.largest()  # the trainer leaves the full network active
    assert after[0] < before[0] - 0.05, (strategy, before, after)
    if strategy != "standard":
        assert after[1] < before[1] - 0.05, (strategy, before, after)


def test_external_teacher_kd_trains(split, tmp_path):
    teacher = tiny_supernet(seed=5).model
    supernet = tiny_supernet()
    space = small_space(supernet)
    before = mean_task_loss(supernet, space.smallest(), split)
    _trainer(supernet, split, tmp_path, strategy="full", teacher=teacher).train()
    assert mean_task_loss(supernet, space.smallest(), split) < before


def test_kd_loss_formula():
    student = torch.tensor([[1.0, -1.0, 0.5]])
    teacher = torch.tensor([[0.2, 0.3, -2.0]])
    t = 2.0
    p = torch.softmax(teacher / t, -1)
    expected = t * t * (p * (p.log() - torch.log_softmax(student / t, -1))).sum()
    assert distill_term((student,), (teacher,), t, regression=False).item() == pytest.approx(expected.item(), rel=1e-5)
    qa = distill_term((student, teacher), (teacher, teacher), t, regression=False)
    assert qa.item() == pytest.approx(expected.item() / 2, rel=1e-5)  # averaged over start and end logits
    assert distill_term((student,), (teacher,), t, regression=True).item() == pytest.approx(
        torch.mean((student - teacher) ** 2).item()
    )
    with pytest.raises(EftnasError, match="kd_temperature"):
        KDConfig(temperature=0)


def test_sampler_is_deterministic_and_validates():
    supernet = tiny_supernet()
    space = small_space(supernet)
    a = SubnetSampler(space, "full", num_random=2, seed=1)
    assert a.plan(7, 100) == SubnetSampler(space, "full", num_random=2, seed=1).plan(7, 100)
    assert [role for role, _ in a.plan(0, 10)] == ["teacher", "student", "student", "student"]
    linear = SubnetSampler(space, "random-linear", num_random=4, seed=0)
    assert all(s == space.largest() for _, s in linear.plan(0, 100))
    with pytest.raises(EftnasError, match="strategy: unknown strategy 'bogus'"):
        SubnetSampler(space, "bogus")


def test_resume_matches_uninterrupted_run(split, tmp_path):
    args = dict(max_steps=6, save_strategy="steps", save_steps=3, seed=7)
    reference = tiny_supernet(seed=1)
    _trainer(reference, split, tmp_path / "ref", **args).train()

    interrupted = tiny_supernet(seed=1)
    first = _trainer(interrupted, split, tmp_path / "run", **args)
    first.add_callback(StopAt(3))
    first.train()
    assert first.state.global_step == 3 and (tmp_path / "run" / "checkpoint-3").is_dir()

    resumed = tiny_supernet(seed=2)  # different init: the checkpoint must restore everything
    second = _trainer(resumed, split, tmp_path / "run", **args)
    second.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-3"))
    assert second.state.global_step == 6
    ref_state = reference.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, ref_state[name], rtol=0, atol=1e-6, msg=name)


def test_progress_bar_carries_the_stage_label(split, tmp_path, capsys):
    from eftnas_deploy.training import label_progress

    trainer = _trainer(tiny_supernet(), split, tmp_path, max_steps=2, disable_tqdm=False)
    label_progress(trainer, "super-network training")
    trainer.train()
    assert "super-network training:" in capsys.readouterr().err
    quiet = _trainer(tiny_supernet(), split, tmp_path / "quiet", max_steps=1)  # no bar: nothing is added
    label_progress(quiet, "x")
    assert not any(type(c).__name__ == "LabelledProgressCallback" for c in quiet.callback_handler.callbacks)


def test_budget_sampling_keeps_every_planned_subnetwork_within_the_budget():
    from eftnas_deploy.core.space import SearchSpace
    from eftnas_deploy.core.subnet import SubnetConfig

    space = SearchSpace(heads=[[4, 3, 2, 1]] * 3, ffn=[[128, 96, 64, 32, 0]] * 3)

    def cost(s: SubnetConfig) -> int:
        return 32 * sum(s.heads) + sum(s.ffn)

    fits = lambda s: cost(s) <= 300  # noqa: E731 - the full model costs 768, the smallest 96
    sampler = SubnetSampler(space, "full", num_random=2, seed=3, fits=fits)
    plans = [sampler.plan(step, 50) for step in range(50)]
    assert all(fits(s) for plan in plans for _, s in plan)
    assert plans == [sampler.plan(step, 50) for step in range(50)]  # deterministic in (seed, step)
    uppers = {plan[0][1] for plan in plans}
    assert len(uppers) > 1 and max(map(cost, uppers)) > 250  # the upper end varies and sits near the budget
    with pytest.raises(EftnasError, match="sampling: the budget is below the smallest"):
        SubnetSampler(space, "full", fits=lambda s: False)


def test_shrink_to_fit_steps_choices_down_until_the_predicate_holds():
    import random

    from eftnas_deploy.core.space import SearchSpace

    space = SearchSpace(heads=[[4, 2, 0]] * 2, ffn=[[64, 32, 0]] * 2)
    rng = random.Random(0)
    shrunk = space.shrink_to_fit(space.largest(), lambda s: sum(s.heads) + sum(s.ffn) / 32 <= 5, rng)
    assert shrunk in space and sum(shrunk.heads) + sum(shrunk.ffn) / 32 <= 5
    assert space.shrink_to_fit(space.largest(), lambda s: False, rng) is None


def test_hidden_distill_term_is_the_masked_layer_mean_of_mse_and_rejects_other_depths():
    from eftnas_deploy.core.errors import EftnasError
    from eftnas_deploy.training.distill import hidden_distill_term

    torch.manual_seed(0)
    teacher = tuple(torch.randn(2, 5, 8) for _ in range(3))
    student = tuple(t.clone() for t in teacher)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert hidden_distill_term(student, teacher, mask).item() == 0.0
    student[1][0, 4] += 100.0  # a padded position: ignored
    assert hidden_distill_term(student, teacher, mask).item() == 0.0
    student[2][1, 0] += 1.0  # one real token of one layer, off by 1 in all 8 features
    expected = (8 * 1.0 / (8 * 8)) / 3  # that layer's MSE over 8 real tokens x 8 features, averaged over 3 layers
    assert hidden_distill_term(student, teacher, mask).item() == pytest.approx(expected)
    with pytest.raises(EftnasError, match="hidden_weight"):
        hidden_distill_term(student[:2], teacher, mask)


def test_hidden_kd_weight_adds_exactly_the_layer_wise_term(tmp_path):
    from eftnas_deploy.training.distill import KDConfig, hidden_distill_term, kd_loss, logits_of
    from tests.conftest import tiny_model
    from tests.training_utils import kd_loss_and_outputs

    teacher = tiny_model(
        "bert", seed=1, vocab_size=30522, max_position_embeddings=128, num_hidden_layers=2, hidden_size=32,
        intermediate_size=64,
    )  # fmt: skip
    losses = {}
    for weight in (0.0, 2.0):
        losses[weight], s_out, t_out, batch = kd_loss_and_outputs(
            tmp_path / str(weight), KDConfig(hidden_weight=weight), teacher
        )
    base = kd_loss(s_out.loss, logits_of(s_out), logits_of(t_out), KDConfig()).item()
    layers = hidden_distill_term(s_out.hidden_states[1:], t_out.hidden_states[1:], batch["attention_mask"]).item()
    assert losses[0.0] == pytest.approx(base, rel=1e-5)
    assert losses[2.0] == pytest.approx(base + 2.0 * layers, rel=1e-5)
    assert layers > 0
