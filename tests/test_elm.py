"""ELM options: streaming PCA of FFN activations, CKA between heads, CKA head order, relational KD."""

from __future__ import annotations

import pytest
import torch

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.families.models import encoder_layers
from eftnas_deploy.importance.activations import (
    Moments,
    cka_from_covariance,
    components_for,
    ffn_moments,
    ffn_pca_components,
    head_cka,
    head_moments,
    linear_cka,
)
from eftnas_deploy.importance.head_order import cka_order, combined_order, head_orders
from eftnas_deploy.importance.scores import magnitude_importance, reorder_by_importance
from eftnas_deploy.space.generate import evenly_spaced_targets, generate_search_space
from eftnas_deploy.space.pca import pca_ffn_scores
from eftnas_deploy.training.rkd import rkd_angle, rkd_distance, rkd_loss
from tests.conftest import outputs_of, random_inputs, tiny_model


def _batches(count: int = 3) -> list[dict[str, torch.Tensor]]:
    return [random_inputs(batch=3, seq=12, seed=s) for s in range(count)]


def _collect(model, batches, path_of, pre: bool) -> list[torch.Tensor]:
    """Every layer's activations at the hooked module, all non-padding tokens stacked (the direct way)."""
    from eftnas_deploy.families.models import family_of, get_submodule

    rows: list[list[torch.Tensor]] = [[] for _ in encoder_layers(model)]
    mask = {}
    handles = []
    for i, layer in enumerate(encoder_layers(model)):
        module = get_submodule(layer, path_of(family_of(model)))

        def record(x, i=i):
            rows[i].append(x[mask["m"].bool()].double())

        if pre:
            handles.append(module.register_forward_pre_hook(lambda _m, a, r=record: r(a[0])))
        else:
            handles.append(module.register_forward_hook(lambda _m, _a, o, r=record: r(o)))
    with torch.no_grad():
        for batch in batches:
            mask["m"] = batch["attention_mask"]
            model(**batch)
    for h in handles:
        h.remove()
    return [torch.cat(r) for r in rows]


def test_streaming_moments_equal_the_full_covariance():
    x = torch.randn(50, 6, dtype=torch.float64) * torch.arange(1, 7) + 3
    m = Moments()
    for chunk in x.split(7):
        m.add(chunk)
    assert torch.allclose(m.covariance(), torch.cov(x.T), atol=1e-10)


def test_streaming_pca_over_batches_equals_the_direct_computation():
    model = tiny_model()
    batches = _batches()
    direct = _collect(model, batches, lambda f: f.ffn.activation, pre=False)
    streamed = ffn_moments(model, batches)
    for x, m in zip(direct, streamed):
        assert m.count == x.shape[0]
        assert torch.allclose(m.covariance(), torch.cov(x.T), atol=1e-8)
        eig = torch.linalg.eigvalsh(torch.cov(x.T)).flip(0)
        ratio = eig.cumsum(0) / eig.sum()
        for fraction in (0.5, 0.9, 0.99):
            expected = int((ratio < fraction).sum()) + 1
            assert components_for(m.covariance(), fraction) == expected
    counts = ffn_pca_components(model, batches, 0.9)
    assert len(counts) == 3 and all(1 <= k <= 128 for k in counts)
    assert ffn_pca_components(model, batches, 0.5) <= ffn_pca_components(model, batches, 0.99)


def test_components_for_a_known_spectrum():
    cov = torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=torch.float64))
    assert [components_for(cov, f) for f in (0.4, 0.41, 0.7, 0.9, 1.0)] == [1, 2, 2, 3, 4]
    with pytest.raises(EftnasError):
        components_for(cov, 0.0)


def test_linear_cka_identity_orthogonal_and_scale_invariance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    y = x @ torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.3 * torch.randn(40, 3, generator=g).double()
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x @ q, y) == pytest.approx(linear_cka(x, y))
    assert linear_cka(7.5 * x, y) == pytest.approx(linear_cka(x, y))
    assert 0 < linear_cka(x, torch.randn(40, 4, generator=g, dtype=torch.float64)) < linear_cka(x, y) < 1


def test_streaming_head_cka_equals_the_direct_computation():
    model = tiny_model()
    batches = _batches()
    direct = _collect(model, batches, lambda f: f.attention.output, pre=True)
    cka = head_cka(model, batches)
    assert cka.shape == (3, 4, 4)
    for layer, x in enumerate(direct):
        heads = x.split(16, dim=1)
        for i in range(4):
            for j in range(4):
                assert cka[layer, i, j].item() == pytest.approx(linear_cka(heads[i], heads[j]), rel=1e-6)
        assert torch.allclose(cka[layer].diagonal(), torch.ones(4, dtype=torch.float64))
    joint = head_moments(model, batches)[0].covariance()
    assert torch.allclose(cka_from_covariance(joint, 4), cka[0])


def test_cka_order_starts_with_the_most_important_head_and_skips_redundant_ones():
    # heads 0 and 1 are near copies; 2 is unlike both; 3 is somewhat like 0
    cka = torch.tensor([[1.0, 0.95, 0.1, 0.6], [0.95, 1.0, 0.1, 0.5], [0.1, 0.1, 1.0, 0.2], [0.6, 0.5, 0.2, 1.0]])
    importance = torch.tensor([3.0, 4.0, 1.0, 2.0])
    assert cka_order(cka, importance) == [1, 2, 3, 0]
    # importance ranks 1,0,3,2 (0..3); CKA ranks 1,2,3,0 -> sums: 1:0, 0:1+3, 3:2+2, 2:3+1 -> ties by importance
    assert combined_order(cka, importance) == [1, 0, 3, 2]
    assert head_orders("importance", importance[None]) == [[1, 0, 3, 2]]
    with pytest.raises(EftnasError, match="CKA"):
        head_orders("cka", importance[None])


def test_reorder_with_cka_head_order_keeps_the_function_and_sorted_scores():
    model = tiny_model()
    inputs = random_inputs()
    before = outputs_of(model, inputs)
    scores = magnitude_importance(model)
    orders = head_orders("cka", scores.heads, head_cka(model, _batches()))
    reordered = reorder_by_importance(model, scores, orders)
    assert torch.allclose(outputs_of(model, inputs), before, atol=1e-5)
    assert reordered.is_sorted()
    assert reordered.metadata["head_orders"] == orders
    reordered.check_model(model)


def test_pca_scores_make_ffn_widths_follow_the_component_counts():
    model = tiny_model(intermediate_size=128)
    scores = reorder_by_importance(model, magnitude_importance(model))
    pca = pca_ffn_scores(scores, [16, 64, 32])
    assert pca.is_sorted() and torch.equal(pca.heads, scores.heads)
    g = scores.geometry
    from eftnas_deploy.metrics import count_macs

    full = count_macs(SubnetConfig.full(g), g, seq_len=32)
    space = generate_search_space(
        pca, evenly_spaced_targets(0.4 * full, 0.8 * full, 3), tolerance=0.1, ffn_multiple=8, seq_len=32
    )
    for target in space.metadata["targets"]:
        ffn = target["subnet"]["ffn"]
        assert ffn[1] >= ffn[2] >= ffn[0]  # wider where more components are needed
    with pytest.raises(EftnasError):
        pca_ffn_scores(scores, [0, 1, 2])


def test_rkd_is_zero_for_identical_and_scaled_representations_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(8, 16, generator=g)
    assert rkd_distance(t, t).item() == pytest.approx(0.0, abs=1e-7)
    assert rkd_angle(t, t).item() == pytest.approx(0.0, abs=1e-7)
    assert rkd_loss(3.0 * t, t).item() == pytest.approx(0.0, abs=1e-6)  # distances normalised by their mean
    other = torch.randn(8, 16, generator=g)
    assert rkd_distance(other, t) > 0 and rkd_angle(other, t) > 0
    s = other.clone().requires_grad_(True)
    rkd_loss(s, t).backward()
    assert s.grad.abs().sum() > 0


def test_rkd_matches_a_direct_triplet_loop():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)

    def angles(x):
        out = []
        for i in range(5):
            for j in range(5):
                for k in range(5):
                    a, b = x[i] - x[j], x[k] - x[j]
                    na, nb = a.norm(), b.norm()
                    out.append(0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb)))
        return torch.tensor(out)

    def distances(x):
        d = torch.tensor([float((x[i] - x[j]).norm()) for i in range(5) for j in range(5) if i != j])
        return d / d.mean()

    huber = torch.nn.functional.smooth_l1_loss
    assert rkd_angle(s, t).item() == pytest.approx(huber(angles(s), angles(t)).item(), rel=1e-5)
    assert rkd_distance(s, t).item() == pytest.approx(huber(distances(s), distances(t)).item(), rel=1e-5)


def test_rkd_weight_adds_exactly_the_relational_term_and_zero_changes_nothing(tmp_path):
    from eftnas_deploy.training.distill import KDConfig, kd_loss, logits_of
    from tests.conftest import tiny_model as build
    from tests.training_utils import kd_loss_and_outputs

    teacher = build("bert", vocab_size=30522, max_position_embeddings=128, hidden_size=32, intermediate_size=64)
    losses = {}
    for weight in (0.0, 0.5):
        losses[weight], s_out, t_out, _ = kd_loss_and_outputs(
            tmp_path / str(weight), KDConfig(rkd_weight=weight), teacher
        )
    assert KDConfig(rkd_weight=0.0) == KDConfig()
    base = kd_loss(s_out.loss, logits_of(s_out), logits_of(t_out), KDConfig()).item()  # today's 0.1 task + 0.9 KD
    relational = rkd_loss(s_out.hidden_states[-1][:, 0], t_out.hidden_states[-1][:, 0]).item()
    assert losses[0.0] == pytest.approx(base, rel=1e-5)
    assert losses[0.5] == pytest.approx(base + 0.5 * relational, rel=1e-5)
    assert relational > 0


@pytest.mark.parametrize("strategy,distill_from", [("sandwich", "largest"), ("full", "teacher")])
def test_supernet_training_with_rkd_runs_and_updates_weights(tmp_path, strategy, distill_from):
    from eftnas_deploy.training.distill import KDConfig
    from tests.conftest import tiny_model as build
    from tests.training_utils import kd_trainer

    teacher = build("bert", vocab_size=30522, max_position_embeddings=128, hidden_size=32, intermediate_size=64)
    trainer, _ = kd_trainer(tmp_path, KDConfig(rkd_weight=1.0), teacher, strategy=strategy, distill_from=distill_from)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def test_elm_config_keys_are_validated_and_default_to_todays_behaviour():
    from eftnas_deploy.app.pipeline.config import SpaceConfig, SupernetConfig, load_config

    assert (SpaceConfig().ffn_bounds, SpaceConfig().head_order, SupernetConfig().rkd_weight) == (
        "importance", "importance", 0.0,
    )  # fmt: skip
    assert SupernetConfig().growth == "none"
    assert not SpaceConfig().needs_calibration
    bad = {
        "model": {"name": "x"},
        "space": {"ffn_bounds": "svd", "head_order": "random", "pca_variance": 1.5, "calibration_batches": 0},
        "supernet": {"rkd_weight": -1},
    }
    with pytest.raises(EftnasError) as err:
        load_config(None, bad)
    for key in ("ffn_bounds", "head_order", "pca_variance", "calibration_batches", "rkd_weight"):
        assert key in str(err.value)
    with pytest.raises(EftnasError, match=r"supernet\.growth"):
        load_config(None, {"model": {"name": "x"}, "supernet": {"growth": "pca"}})
    with pytest.raises(EftnasError, match="pca bounds need kind"):
        load_config(None, {"model": {"name": "x"}, "space": {"ffn_bounds": "pca", "kind": "medium"}})


def test_tiny_pipeline_with_pca_bounds_cka_heads_and_rkd(tmp_path):
    from eftnas_deploy.app.commands.demo import DATA_DIR, demo_config, write_task
    from eftnas_deploy.app.pipeline.config import PipelineConfig
    from eftnas_deploy.app.pipeline.runner import read_state, run_pipeline
    from eftnas_deploy.core.io import read_json

    run_dir = tmp_path / "run"
    write_task(run_dir / DATA_DIR, 600, 100, seed=0)
    config = demo_config(run_dir, "tiny", 0)
    config["teacher"]["epochs"] = 2.0
    config["space"] |= {"ffn_bounds": "pca", "head_order": "cka+importance", "calibration_batches": 4}
    config["supernet"] |= {"rkd_weight": 0.5, "epochs": 0.5, "growth": "pca", "growth_stages": 2}
    config["lut"] = {"measure": False}
    config["search"] = {"objective": "macs", "evals": 10, "max_macs": None}
    config["finetune"] = {"enabled": False}
    config["export"] = {"formats": ["pytorch"], "benchmark_repeats": 2}
    run_pipeline(PipelineConfig.from_dict(config), run_dir, keep=(DATA_DIR,))
    space = read_json(run_dir / "03_space" / "search_space.json")
    elm = space["metadata"]["elm"]
    assert elm["bounds"] == {"heads": "importance-threshold", "ffn": "pca-threshold"}
    assert elm["head_order"] == "cka+importance" and len(elm["pca_components"]) == 2
    assert read_state(run_dir)["stages"]["03_space"]["outputs"]["bounds"]["ffn"] == "pca-threshold"
    supernet = read_json(run_dir / "05_supernet" / "supernet.json")
    assert supernet["training"]["kd"]["rkd_weight"] == 0.5 and supernet["training"]["growth"] == "pca"
    report = read_json(run_dir / "report.json")
    assert report["space_methods"]["bounds"]["ffn"] == "pca-threshold"
    assert "FFN by pca-threshold" in (run_dir / "report.md").read_text()


def test_progressive_growth_widens_top_pca_layers_first_and_ends_with_the_whole_space():
    from eftnas_deploy.core.space import SearchSpace
    from eftnas_deploy.training.growth import grown_layers, growth_space, pca_growth_ranking
    from eftnas_deploy.training.sampling import SubnetSampler

    space = SearchSpace(
        heads=[(4, 2), (4, 2), (4, 1)], ffn=[(128, 64, 32), (128, 96, 0), (128, 48)],
        metadata={"elm": {"pca_components": [20, 90, 50]}},
    )  # fmt: skip
    ranking = pca_growth_ranking(space)
    assert ranking == (1, 2, 0)
    assert [grown_layers(s, 30, 3, 3) for s in (0, 9, 10, 19, 20, 29, 30)] == [1, 1, 2, 2, 3, 3, 3]
    early = growth_space(space, ranking, 1)
    assert early.ffn == ((32,), (128, 96, 0), (48,)) and early.heads == space.heads
    assert growth_space(space, ranking, 3).ffn == space.ffn
    sampler = SubnetSampler(space, "sandwich", 2, seed=0, growth=ranking, growth_stages=3)
    for step in range(0, 10):
        for _, subnet in sampler.plan(step, 30):
            assert subnet.ffn[0] == 32 and subnet.ffn[2] == 48
    assert list(sampler.plan(29, 30)[0][1].ffn) == [128, 128, 128]
    with pytest.raises(EftnasError, match="ffn_bounds: pca"):
        pca_growth_ranking(SearchSpace(heads=space.heads, ffn=space.ffn))
    with pytest.raises(EftnasError, match="ranking"):
        SubnetSampler(space, growth=(0, 1), growth_stages=2)


def test_supernet_training_with_pca_growth(tmp_path):
    from eftnas_deploy.core.space import SearchSpace
    from eftnas_deploy.training import SuperNetTrainer, collator_for, training_arguments
    from tests.training_utils import small_space, sst2_split, tiny_supernet, tokenizer

    net = tiny_supernet(hidden_size=32, intermediate_size=64)
    base = small_space(net)
    space = SearchSpace(heads=base.heads, ffn=base.ffn, metadata={"elm": {"pca_components": [10, 40]}})
    split = sst2_split(rows=24, max_length=16)
    args = training_arguments(tmp_path, max_steps=4, per_device_train_batch_size=8, disable_tqdm=True)
    trainer = SuperNetTrainer(
        supernet=net, search_space=space, strategy="sandwich", growth="pca", growth_stages=2, args=args,
        train_dataset=split.features, data_collator=collator_for(split, tokenizer()),
    )  # fmt: skip
    assert trainer.sampler.growth == (1, 0)
    seen = []
    original = net.set_subnet
    net.set_subnet = lambda s: (seen.append(list(s.ffn)), original(s))[1]
    trainer.train()
    trained = seen[: len(seen) // 2]  # the first half of the steps: layer 0 held at its narrowest width
    narrow = min(c for c in space.ffn[0] if c > 0)
    assert all(f[0] <= narrow for f in trained if f != [64, 64]) and any(f[1] == 64 for f in trained)
