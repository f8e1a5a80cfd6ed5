"""LoRA super-adapters (and Wanda sparsity) through the pipeline config, the CLI and every stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from eftnas_deploy.app.cli import main
from eftnas_deploy.app.pipeline.config import PipelineConfig, parse_assignments
from eftnas_deploy.app.pipeline.preflight import preflight
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.lora.elastic import attach_lora
from eftnas_deploy.lora.supernet import LoraSuperNetwork, load_masks, widths_only
from eftnas_deploy.sparsity import wanda_prune
from eftnas_deploy.supernet.elastic import SuperNetwork
from eftnas_deploy.supernet.slicing import load_sliced, slice_subnet
from tests.conftest import outputs_of, random_inputs, tiny_model
from tests.test_lora import SMALL, _randomize

BASE = {"model": {"name": "unused"}}


# -- config ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "section,expected",
    [
        ({"supernet": {"adapters": "qlora"}}, "supernet.adapters: 'qlora' is not one of ('none', 'lora')"),
        ({"lora": {"max_rank": 8, "rank_choices": [8, 12]}}, "lora.rank_choices: [12] outside [0, max_rank 8]"),
        ({"lora": {"rank_choices": []}}, "lora.rank_choices: at least one rank is required"),
        ({"lora": {"rank_choices": "8,4"}}, "lora.rank_choices: expected a list, got '8,4'"),
        ({"lora": {"groups": ["lora_v"]}}, "lora.groups: ['lora_v'] given; choose from"),
        ({"lora": {"dropout": 1.0}}, "lora.dropout: must be < 1, got 1.0"),
        ({"lora": {"max_rank": 0}}, "lora.max_rank: must be > 0, got 0"),
        (
            {"supernet": {"adapters": "lora"}, "sparsity": {"method": "wanda", "target": 1.0}},
            "sparsity.target: 1 is not a fraction in (0, 1) or an N:M pattern",
        ),
        (
            {"supernet": {"adapters": "lora"}, "sparsity": {"method": "wanda", "target": 124}},
            "sparsity.target: 124 is not a fraction in (0, 1) or an N:M pattern (an unquoted N:M is a base-60 integer",
        ),
        (
            {"supernet": {"adapters": "lora"}, "sparsity": {"method": "wanda", "target": "4:2"}},
            "sparsity.target: '4:2' is not a fraction in (0, 1) or an N:M pattern with 0 < N < M",
        ),
        ({"sparsity": {"target": "2:4"}}, "sparsity.target: an N:M pattern (2:4) needs sparsity.method: wanda"),
        ({"sparsity": {"method": "wanda"}}, "sparsity.method: wanda needs supernet.adapters: lora"),
        ({"sparsity": {"method": "sparsegpt"}}, "sparsity.method: 'sparsegpt' is not one of ('none', 'wanda')"),
    ],
)
def test_bad_adapter_and_sparsity_fields_give_one_line_errors(section, expected):
    with pytest.raises(EftnasError) as info:
        PipelineConfig.from_dict({**BASE, **section})
    message = str(info.value)
    assert message.startswith("invalid pipeline config: ") and "\n" not in message, message
    assert expected in message, message


def test_adapter_and_sparsity_settings_parse_from_yaml_and_set():
    overrides = parse_assignments(
        ["supernet.adapters=lora", "lora.rank_choices=[16, 8, 0]", "sparsity.method=wanda", "sparsity.target=2:4"]
    )
    assert overrides["sparsity.target"] == "2:4"  # not YAML's base-60 integer 124
    config = PipelineConfig.from_dict({**BASE, "lora": {"max_rank": 16}, "supernet": {}, "sparsity": {}})
    assert config.supernet.adapters == "none" and config.sparsity.pattern is None  # defaults: today's pipeline
    assert config.lora.ranks == (16, 12, 8) and PipelineConfig.from_dict(BASE).lora.ranks == (32, 24, 16)
    from eftnas_deploy.app.pipeline.config import load_config

    config = load_config(None, {**overrides, "model.name": "x", "lora.max_rank": 16})
    assert config.lora.rank_choices == (16, 8, 0) and config.sparsity.pattern == (2, 4)
    assert PipelineConfig.from_dict(config.to_dict()) == config  # round-trips through pipeline.yaml


def _tiny_config(**sections) -> PipelineConfig:
    from eftnas_deploy.app.commands.demo import demo_config

    config = demo_config(Path("/nonexistent"), "tiny", 0)
    config["data"].update(train_file=None, dev_file=None)
    config["model"]["tokenizer"] = "bert-base-uncased"
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return PipelineConfig.from_dict(config)


@pytest.mark.parametrize(
    "sections,expected",
    [
        (
            {"supernet": {"adapters": "lora"}, "lora": {"max_rank": 96, "rank_choices": [8]}},
            "lora.max_rank: 96 exceeds",
        ),
        (
            {"supernet": {"adapters": "lora"}, "lora": {"max_rank": 8, "rank_choices": [8]},
             "sparsity": {"method": "wanda", "target": "3:5"}},
            "sparsity.target: 3:5 needs hidden_size (64) divisible by 5",
        ),
    ],
)  # fmt: skip
def test_preflight_checks_adapters_against_the_model(sections, expected, monkeypatch):
    monkeypatch.setattr("eftnas_deploy.app.pipeline.preflight._check_tokenizer", lambda *a: [])
    with pytest.raises(EftnasError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        preflight(_tiny_config(**sections))


def test_run_flags_reach_the_config(capsys):
    code = main(["run", "--model", "x", "--sparsity-target", "2:4", "--lora-ranks", "8,4"])
    assert code == 2
    err = capsys.readouterr().err
    assert "sparsity.target: an N:M pattern (2:4) needs sparsity.method: wanda" in err
    code = main(["run", "--model", "x", "--adapters", "lora", "--lora-max-rank", "4", "--lora-ranks", "8,4"])
    assert code == 2 and "lora.rank_choices: [8] outside [0, max_rank 4]" in capsys.readouterr().err


def test_method_presets_sit_beneath_the_file_flags_and_set(tmp_path, monkeypatch):
    from eftnas_deploy.app.commands.run import METHOD_NAMES
    from eftnas_deploy.app.pipeline.config import METHODS, load_config, method_overrides

    assert tuple(METHODS) == METHOD_NAMES
    preset = method_overrides("shears", {"sparsity.target": "2:4"}, {"lora": {"elastic_widths": True}})
    assert preset == {"supernet.adapters": "lora", "sparsity.method": "wanda"}
    config = load_config(None, {**method_overrides("shears", {}, {}), "model.name": "x"})
    assert (config.supernet.adapters, config.sparsity.method, config.sparsity.target) == ("lora", "wanda", 0.5)
    assert config.lora.elastic_widths is False
    with pytest.raises(EftnasError, match=r"^method: 'sqft' is not one of"):
        method_overrides("sqft", {}, {})
    seen = {}
    monkeypatch.setattr("eftnas_deploy.app.pipeline.runner.run_pipeline", lambda c, **k: seen.setdefault("c", c))
    (tmp_path / "run.yaml").write_text("data: {task: sst2}\nmodel: {name: x}\nsparsity: {target: 0.6}\n")
    assert main(["run", "--config", str(tmp_path / "run.yaml"), "--method", "shears", "--set", "seed=3"]) == 0
    config = seen["c"]
    assert (config.sparsity.method, config.sparsity.target, config.seed) == ("wanda", 0.6, 3)  # the file's 0.6 wins


# -- the width + rank super-network ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
@pytest.mark.parametrize("pruned", [False, True])
def test_widths_and_ranks_unmerged_equal_the_merged_sliced_model(pruned, model_type):
    base, inputs = tiny_model(model_type, seed=0, **SMALL), random_inputs()
    masks = wanda_prune(base, [inputs], pattern=(2, 4)).masks if pruned else None
    elastic = attach_lora(base, max_rank=8)
    _randomize(elastic)
    elastic.set_masks(masks)
    net = LoraSuperNetwork(elastic)
    net.model.eval()
    subnet = SubnetConfig(heads=[2, 4], ffn=[32, 16], lora_qkv=[8, 2], lora_up=[0, 5], lora_down=[3, 8])
    with net.activate(subnet):
        unmerged = outputs_of(net.model, inputs)
    merged = net.merged(subnet)
    dense = slice_subnet(merged, widths_only(subnet))
    assert torch.allclose(outputs_of(dense, inputs), unmerged, atol=1e-5, rtol=0)
    with net.activate(subnet.replace(lora_qkv=[0, 0], lora_up=[0, 0], lora_down=[0, 0])):
        assert not torch.allclose(outputs_of(net.model, inputs), unmerged, atol=1e-4)  # ranks matter under widths
    if pruned:
        modules = dict(merged.model.named_modules())
        assert all(torch.all(modules[n].weight[~m] == 0) for n, m in masks.items())


def test_width_and_rank_training_reaches_only_the_active_adapter_slices():
    net = LoraSuperNetwork(attach_lora(tiny_model(seed=0, **SMALL), max_rank=8))
    _randomize(net.elastic)
    net.set_subnet(SubnetConfig(heads=[1, 4], ffn=[16, 64], lora_qkv=[2, 8], lora_up=[8, 8], lora_down=[4, 8]))
    net.model(**random_inputs(), labels=torch.tensor([0, 1, 1])).loss.backward()
    query = net.elastic.modules["bert.encoder.layer.0.attention.self.query"]
    grad_b = query.lora_B["default"].weight.grad
    assert grad_b[:8, :2].abs().sum() > 0  # 1 head x head_dim 8 rows, rank 2
    assert grad_b[8:].abs().sum() == 0 and grad_b[:, 2:].abs().sum() == 0
    down = net.elastic.modules["bert.encoder.layer.0.output.dense"]
    grad_a = down.lora_A["default"].weight.grad  # FFN down: its inputs are the active FFN neurons
    assert grad_a[:4, :16].abs().sum() > 0 and grad_a[:, 16:].abs().sum() == 0
    assert query.base_layer.weight.grad is None


# -- the pipeline end to end -----------------------------------------------------------------------------------------
def _pipeline(root: Path, name: str, sparsity: dict | None, model_type: str = "bert") -> Path:
    from eftnas_deploy.app.commands.demo import demo_config, write_task
    from eftnas_deploy.app.pipeline.runner import run_pipeline

    run_dir = root / name
    write_task(run_dir / "data", 300, 60, seed=0)
    config = demo_config(run_dir, "tiny", 0)
    config["model"]["model_type"] = model_type
    config["teacher"] = {"epochs": 1.0, "lr": 1e-3}
    config["importance"]["steps"] = 4
    config["supernet"] = {"strategy": "sandwich", "epochs": 0.3, "lr": 1e-3, "adapters": "lora"}
    config["lora"] = {"max_rank": 8, "rank_choices": [8, 4, 2]}
    if sparsity:
        config["sparsity"] = sparsity
    config["search"] |= {"evals": 8, "remeasure_top": 1}
    config["finetune"] = {"epochs": 0.2, "lr": 2e-4}
    config["lut"] |= {"validate_samples": 2}
    config["export"] |= {"calibration_size": 16, "benchmark_repeats": 3, "formats": ["pytorch", "onnx"]}
    config["export"]["pareto_front"] = sparsity is None  # every front point merged and sliced too (dense run)
    run_pipeline(PipelineConfig.from_dict(config), run_dir, keep=("data",))
    return run_dir


@pytest.fixture(scope="module")
def wanda_run(tmp_path_factory):
    """LoRA super-adapters on a 2:4 Wanda-pruned base (about 10 s on one core)."""
    root = tmp_path_factory.mktemp("lora_pipeline")
    return _pipeline(root, "wanda", {"method": "wanda", "target": "2:4", "calibration_batches": 2})


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """LoRA super-adapters on the dense base."""
    return _pipeline(tmp_path_factory.mktemp("lora_pipeline"), "lora", None)


KINDS = [pytest.param("lora", marks=pytest.mark.integration), "wanda"]


def _run(request, kind: str) -> Path:
    return request.getfixturevalue(f"{kind}_run")


def _dev_inputs(run_dir: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "05_supernet"))
    rows = (run_dir / "data" / "dev.tsv").read_text().splitlines()[1:9]
    return dict(tokenizer([r.split("\t")[0] for r in rows], padding=True, return_tensors="pt"))


@pytest.mark.parametrize("kind", KINDS)
def test_exported_model_equals_the_merged_sub_adapter(request, kind):
    run_dir = _run(request, kind)
    supernet_dir = run_dir / "05_supernet"
    descriptor = json.loads((supernet_dir / "supernet.json").read_text())
    assert descriptor["adapters"]["kind"] == "lora" and descriptor["adapters"]["max_rank"] == 8
    assert (descriptor.get("sparsity") or {}).get("method") == ("wanda" if kind == "wanda" else None)
    chosen = SubnetConfig.load(run_dir / "06_search" / "subnet.json")
    assert set(chosen.dimensions) == {"heads", "ffn", "lora_qkv", "lora_up", "lora_down"}
    assert SearchSpace.load(supernet_dir / "search_space.json").lora_qkv[0] == (8, 4, 2)
    assert chosen in SearchSpace.load(supernet_dir / "search_space.json")

    finetuned = json.loads((run_dir / "pipeline_state.json").read_text())["stages"]["07_finetune"]["outputs"]
    assert set(finetuned["distilled_from"]["held_out_scores"]) == {"teacher", "supernet"}  # merged + sliced largest
    adapter = run_dir / "07_finetune" / "model" / "adapter"
    net = LoraSuperNetwork.from_pretrained(supernet_dir, adapter, masks_file=supernet_dir / "masks.safetensors")
    net.model.eval()
    inputs = _dev_inputs(run_dir)
    merged = net.merged(chosen)
    with merged.activate(widths_only(chosen)):
        expected = outputs_of(merged.model, inputs)
    exported = load_sliced(run_dir / "08_export" / "bundle" / "pytorch").eval()
    assert torch.allclose(outputs_of(exported, inputs), expected, atol=1e-5, rtol=0)
    with net.activate(chosen):
        assert torch.allclose(outputs_of(net.model, inputs), expected, atol=1e-5, rtol=0)
    manifest = json.loads((run_dir / "08_export" / "bundle" / "bundle.json").read_text())
    assert manifest["subnet"] == widths_only(chosen).to_dict() and all(p["ok"] for p in manifest["parity"].values())

    deployment = json.loads((run_dir / "08_export" / "deployment.json").read_text())
    record = deployment["adapters"]
    assert record["ranks"] == {d: list(getattr(chosen, d)) for d in ("lora_qkv", "lora_up", "lora_down")}
    assert 0 < record["trainable_parameters"]["lora"] <= record["super_adapter_parameters"]["lora"]
    assert record["unmerged_vs_exported_max_abs"] <= 1e-5
    report = (run_dir / "report.md").read_text()
    assert "## LoRA super-adapter" in report and "Trainable parameters of the sub-adapter" in report
    stage5 = LoraSuperNetwork.from_pretrained(supernet_dir, supernet_dir / "adapter")  # the front's weights
    stage5.model.eval()
    for point in deployment["pareto_bundles"]:  # front points: their own sub-adapter merged, then sliced
        subnet = SubnetConfig.from_dict(point["subnet"])
        dense = load_sliced(run_dir / "08_export" / point["dir"] / "pytorch").eval()
        with stage5.activate(subnet):
            assert torch.allclose(outputs_of(dense, inputs), outputs_of(stage5.model, inputs), atol=1e-5, rtol=0)
    assert (kind == "lora") == bool(deployment["pareto_bundles"])


@pytest.mark.parametrize("kind", KINDS)
def test_the_sub_adapter_loads_with_stock_peft(request, kind):
    run_dir = _run(request, kind)
    supernet_dir, sub = run_dir / "05_supernet", run_dir / "08_export" / "sub_adapter"
    chosen = SubnetConfig.load(run_dir / "06_search" / "subnet.json")
    config = json.loads((sub / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(supernet_dir.resolve())
    base = AutoModelForSequenceClassification.from_pretrained(config["base_model_name_or_path"])
    loaded = PeftModel.from_pretrained(base, str(sub)).eval()
    ranks = {n: m.r["default"] for n, m in loaded.named_modules() if hasattr(m, "r") and "default" in m.r}
    assert ranks["base_model.model.bert.encoder.layer.1.output.dense"] == chosen.lora_down[1]
    # Masks are not stored in a peft directory: stock peft applies the unmasked sub-adapter at full widths.
    net = LoraSuperNetwork.from_pretrained(supernet_dir, run_dir / "07_finetune" / "model" / "adapter")
    net.model.eval()
    inputs = _dev_inputs(run_dir)
    with net.activate(chosen.replace(heads=[4, 4], ffn=[128, 128])):
        expected = outputs_of(net.model, inputs)
    assert torch.allclose(outputs_of(loaded, inputs), expected, atol=1e-5, rtol=0)
    if kind == "wanda":  # the super-network with its masks differs: merge with eftnas to keep the sparsity
        masked = LoraSuperNetwork.from_pretrained(
            supernet_dir, run_dir / "07_finetune" / "model" / "adapter", masks_file=supernet_dir / "masks.safetensors"
        )
        with masked.activate(chosen.replace(heads=[4, 4], ffn=[128, 128])):
            assert not torch.allclose(outputs_of(masked.model.eval(), inputs), expected, atol=1e-6)


def test_wanda_zeros_survive_training_merging_and_export(wanda_run):
    run_dir = wanda_run
    supernet_dir = run_dir / "05_supernet"
    masks = load_masks(supernet_dir / "masks.safetensors")
    assert len(masks) == 2 * 6  # every linear of both encoder layers
    base = AutoModelForSequenceClassification.from_pretrained(str(supernet_dir))
    before = AutoModelForSequenceClassification.from_pretrained(str(run_dir / "03_space" / "model"))
    base_modules, before_modules = dict(base.named_modules()), dict(before.named_modules())
    for name, mask in masks.items():
        assert torch.equal(base_modules[name].weight, before_modules[name].weight * mask)  # pruned, else frozen
        groups = mask.reshape(mask.shape[0], -1, 4).sum(-1)
        assert torch.all(groups == 2)  # 2:4
    exported = load_sliced(run_dir / "08_export" / "bundle" / "pytorch")
    modules, checked = dict(exported.named_modules()), 0
    for name, mask in masks.items():
        if name not in modules:
            continue  # a block the chosen sub-network skips
        weight = modules[name].weight.detach()
        kept = mask[: weight.shape[0], : weight.shape[1]]  # slicing keeps the leading rows and columns
        assert torch.all(weight[~kept] == 0), name
        assert (weight != 0).sum() > 0
        checked += 1
    assert checked >= 6
    record = json.loads((run_dir / "08_export" / "deployment.json").read_text())["adapters"]["sparsity"]
    assert record["mask_kept"] is True and record["overall"] == pytest.approx(0.5)
    assert "every pruned weight is still zero" in (run_dir / "report.md").read_text()
    stored = load_file(str(run_dir / "07_finetune" / "model" / "adapter" / "adapter_model.safetensors"))
    assert any("lora_A" in key for key in stored)


def test_the_export_command_merges_a_lora_supernet_directory(wanda_run, tmp_path):
    run_dir = wanda_run
    out = tmp_path / "bundle"
    subnet = str(run_dir / "06_search" / "subnet.json")
    args = ["export", "--supernet", str(run_dir / "05_supernet"), "--subnet", subnet, "--formats", "pytorch",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    chosen = SubnetConfig.load(run_dir / "06_search" / "subnet.json")
    net = LoraSuperNetwork.from_pretrained(
        run_dir / "05_supernet",
        run_dir / "05_supernet" / "adapter",
        masks_file=run_dir / "05_supernet" / "masks.safetensors",
    )
    net.model.eval()
    inputs = _dev_inputs(run_dir)
    with net.activate(chosen):
        expected = outputs_of(net.model, inputs)
    assert torch.allclose(outputs_of(load_sliced(out / "pytorch").eval(), inputs), expected, atol=1e-5, rtol=0)
    plain = SuperNetwork.from_pretrained(str(run_dir / "05_supernet"))  # the base alone differs: adapters count
    with plain.activate(widths_only(chosen)):
        assert not torch.allclose(outputs_of(plain.model.eval(), inputs), expected, atol=1e-4)


def test_train_supernet_search_and_export_commands_with_adapters(wanda_run, tmp_path, capsys):
    """The stage functions behind the standalone commands: super-adapters on a pruned base, searched, exported."""
    from eftnas_deploy.space.lora import widths_space

    data, space_dir = wanda_run / "data", wanda_run / "03_space"
    supernet = tmp_path / "supernet"
    with_ranks = space_dir / "search_space.json"  # the pipeline's: ranks 8, 4, 2
    common = ["train-supernet", "--task", "sst2", "--train-file", str(data / "train.tsv"), "--max-length", "48",
              "--model", str(space_dir / "model"), "--adapters", "lora", "--lora-max-rank", "4"]  # fmt: skip
    assert main([*common, "--search-space", str(with_ranks), "--out", str(tmp_path / "refused")]) == 2
    assert "search_space: lora_qkv rank 8 exceeds lora.max_rank 4" in capsys.readouterr().err
    widths_space(SearchSpace.load(with_ranks)).save(tmp_path / "widths.json")
    args = ["train-supernet", "--task", "sst2", "--train-file", str(data / "train.tsv"), "--max-length", "48",
            "--model", str(space_dir / "model"), "--search-space", str(tmp_path / "widths.json"),
            "--adapters", "lora", "--lora-max-rank", "4", "--sparsity", "wanda", "--sparsity-target", "0.25",
            "--calibration-batches", "1", "--max-steps", "2", "--batch-size", "16", "--out", str(supernet)]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    descriptor = json.loads((supernet / "supernet.json").read_text())
    assert descriptor["adapters"]["rank_choices"] == [4, 3, 2] and descriptor["sparsity"]["target"] == 0.25
    assert SearchSpace.load(supernet / "search_space.json").lora_down[1] == (4, 3, 2)
    assert json.loads((supernet / "sparsity.json").read_text())["overall"] == pytest.approx(0.25, abs=0.01)
    search = tmp_path / "search"
    assert (
        main(["search", "--supernet", str(supernet), "--evals", "4", "--objective", "params", "--out", str(search)])
        == 0
    )
    chosen = SubnetConfig.load(search / "subnet.json")
    assert chosen.lora_qkv[0] in (4, 3, 2)
    bundle = tmp_path / "bundle"
    args = ["export", "--supernet", str(supernet), "--subnet", str(search / "subnet.json"), "--formats", "pytorch",
            "--out", str(bundle)]  # fmt: skip
    assert main(args) == 0
    net = LoraSuperNetwork.from_pretrained(supernet, supernet / "adapter", masks_file=supernet / "masks.safetensors")
    inputs = _dev_inputs(wanda_run)
    with net.activate(chosen):
        expected = outputs_of(net.model.eval(), inputs)
    assert torch.allclose(outputs_of(load_sliced(bundle / "pytorch").eval(), inputs), expected, atol=1e-5, rtol=0)
    assert main(["train-supernet", "--task", "sst2", "--model", "x", "--sparsity", "wanda", "--out", "y"]) == 2
    assert "sparsity: wanda needs --adapters lora" in capsys.readouterr().err


def test_an_interrupted_super_adapter_stage_resumes_from_its_checkpoint(wanda_run, tmp_path, monkeypatch):
    import types

    from transformers import AutoTokenizer

    from eftnas_deploy.app.pipeline import adapters, supernet_fit
    from eftnas_deploy.app.pipeline.config import load_config
    from eftnas_deploy.app.pipeline.context import RunContext
    from eftnas_deploy.app.pipeline.runner import CONFIG_FILE
    from eftnas_deploy.app.pipeline.stages import _trainer_args

    config = load_config(wanda_run / CONFIG_FILE)
    ctx = RunContext(config, wanda_run)
    tokenizer = AutoTokenizer.from_pretrained(str(wanda_run / "03_space" / "model"))
    work = tmp_path / "05_supernet.partial"
    work.mkdir()
    cfg = config.supernet

    def stage():
        return adapters.train_lora_supernet(
            cfg, config.lora, config.sparsity, config.data, model_dir=wanda_run / "03_space" / "model",
            tokenizer=tokenizer, search_space=SearchSpace.load(wanda_run / "03_space" / "search_space.json"),
            teacher_dir=None, train=ctx.split("train", tokenizer), held_out=ctx.split("held_out", tokenizer),
            held_out_file=wanda_run / "held_out.json", work=work, seed=0,
            trainer_args=lambda out: _trainer_args(out, cfg, 0, False, save_steps=1, max_steps=2),
        )  # fmt: skip

    def killed(*args, **kwargs):
        raise RuntimeError("killed after training, before the checkpoints were removed")

    monkeypatch.setattr(supernet_fit, "shutil", types.SimpleNamespace(rmtree=killed))
    with pytest.raises(RuntimeError, match="killed"):
        stage()
    assert (work / "checkpoints" / "checkpoint-2").is_dir() and (work / "masks.safetensors").is_file()
    report = (work / "sparsity.json").read_text()
    monkeypatch.undo()
    result = stage()
    assert result["resumed_from"].endswith("checkpoint-2")
    assert (work / "sparsity.json").read_text() == report  # the same masks, re-applied rather than re-scored
    net = LoraSuperNetwork.from_pretrained(work, work / "adapter", masks_file=work / "masks.safetensors")
    trained = [m.lora_B["default"].weight for m in net.elastic.modules.values()]
    assert any(w.abs().sum() > 0 for w in trained)  # the checkpoint's adapters, not peft's zero-initialised B
    base = dict(AutoModelForSequenceClassification.from_pretrained(str(work)).named_modules())
    for name, mask in load_masks(work / "masks.safetensors").items():
        assert torch.all(base[name].weight[~mask] == 0)


@pytest.mark.integration
def test_a_distilbert_pipeline_with_pruned_super_adapters(tmp_path):
    run_dir = _pipeline(tmp_path, "distilbert", {"method": "wanda", "target": 0.5}, model_type="distilbert")
    deployment = json.loads((run_dir / "08_export" / "deployment.json").read_text())
    record = deployment["adapters"]
    assert record["unmerged_vs_exported_max_abs"] <= 1e-5 and record["sparsity"]["mask_kept"]
    assert any(name.endswith("ffn.lin1") for name in record["sparsity"]["per_layer"])
    exported = load_sliced(run_dir / "08_export" / "bundle" / "pytorch")
    assert exported.config.model_type == "distilbert"


def test_the_lora_example_config_is_valid(shared_data, monkeypatch):
    from eftnas_deploy.app.pipeline.config import load_config

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)  # example paths are relative to the repository root
    config = load_config(root / "examples" / "lora_nls.yaml")
    assert config.supernet.adapters == "lora" and config.sparsity.pattern == (2, 4)
    assert Path(config.model.tokenizer).is_dir() and Path(config.data.train_file).is_file()


@pytest.mark.integration
def test_the_lora_example_runs_as_written(tmp_path, monkeypatch):
    from eftnas_deploy.app.pipeline.runner import read_state
    from tests.test_examples import EXAMPLES, ROOT, _set_args

    if not (ROOT.parent / "shared" / "data").is_dir():
        pytest.skip("shared data not found")
    monkeypatch.chdir(ROOT)
    out = tmp_path / "lora_nls"
    assert main(["run", "--config", str(EXAMPLES / "lora_nls.yaml"), "--out", str(out), *_set_args("lora_nls")]) == 0
    assert "08_export" in read_state(out)["stages"] and (out / "08_export" / "sub_adapter").is_dir()
    assert json.loads((out / "08_export" / "deployment.json").read_text())["adapters"]["sparsity"]["mask_kept"]


def test_search_costs_count_what_is_deployed():
    from eftnas_deploy.core.geometry import ModelGeometry
    from eftnas_deploy.metrics import count_params
    from eftnas_deploy.search.outputs import deployed, point_record
    from eftnas_deploy.search.pareto import ParetoPoint
    from eftnas_deploy.search.session import cost_functions

    net = LoraSuperNetwork(attach_lora(tiny_model(seed=0, **SMALL), max_rank=8))
    geometry: ModelGeometry = net.geometry
    subnet = SubnetConfig(heads=[2, 4], ffn=[32, 16], lora_qkv=[8, 2], lora_up=[0, 5], lora_down=[3, 8])
    assert deployed(subnet) == widths_only(subnet) and deployed(widths_only(subnet)) == widths_only(subnet)
    costs = cost_functions(net, seq_len=16, batch=1, latency_ms=None)
    params = count_params(widths_only(subnet), geometry)
    assert costs["params"](subnet) == params / 1e6 < count_params(subnet, geometry) / 1e6  # ranks merge away
    assert costs["macs"](subnet) == costs["macs"](widths_only(subnet))
    assert point_record(ParetoPoint(subnet, 0.5, 1.0), geometry, 16, 1)["params"] == params
