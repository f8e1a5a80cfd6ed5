"""The pipeline: config validation, the offline demo end to end (tiny size), resume and refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from eftnas_deploy.app.cli import main
from eftnas_deploy.app.pipeline import STAGES, load_config, read_state
from eftnas_deploy.app.pipeline.config import parse_assignments
from eftnas_deploy.core.errors import EftnasError

STAGE_NAMES = [name for name, _ in STAGES]


def test_config_validation_lists_every_bad_field(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": {"name": "bert-base-uncased"},
                "search": {"evals": 0, "selection": "best"},
                "lut": {"runtime": "tvm"},
                "teacher": {"epochs": "three"},
                "data": {"train_file": str(tmp_path / "missing.tsv"), "colour": "red"},
                "surprise": {},
            }
        )
    )
    with pytest.raises(EftnasError) as info:
        load_config(path, {"space.min_fraction": 0.95})
    message = str(info.value)
    for expected in (
        "search.evals: must be > 0",
        "search.selection: 'best' is not one of",
        "lut.runtime: 'tvm' is not one of",
        "teacher.epochs: expected a number",
        "data.colour: unknown key",
        "surprise: unknown key",
        "data.train_file: ",
        "space.min_fraction: 0.95 is above max_fraction",
    ):
        assert expected in message, expected


def test_config_from_yaml_and_overrides(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("model:\n  name: bert-base-uncased\nsearch:\n  max_latency_ms: 5\n")
    overrides = parse_assignments(["supernet.epochs=2", "export.formats=onnx,openvino", "lut.grid=4"])
    config = load_config(path, overrides)
    assert config.search.max_latency_ms == 5.0 and isinstance(config.search.max_latency_ms, float)
    assert config.supernet.epochs == 2.0
    assert config.export.formats == ("onnx", "openvino")
    assert config.lut.grid == 4
    assert load_config(None, config.to_dict()) == config  # to_dict round-trips through validation
    with pytest.raises(EftnasError, match=r"model\.name: give exactly one"):
        load_config(None, {})


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--size", "tiny", "--out", str(out)]) == 0
    return out


@pytest.mark.integration
def test_demo_runs_offline_and_every_artifact_loads(demo_run):
    import onnxruntime as ort
    import openvino as ov
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    state = read_state(demo_run)
    assert [s for s in STAGE_NAMES if state["stages"][s]["status"] == "done"] == STAGE_NAMES
    report = (demo_run / "report.md").read_text()
    for png in ("pareto.png", "lut_validation.png"):
        assert f"]({png})" in report and (demo_run / png).stat().st_size > 1000
    distilled = state["stages"]["07_finetune"]["outputs"]["distilled_from"]
    assert distilled["teacher"] in ("teacher", "supernet") and set(distilled["held_out_scores"]) == {
        "teacher", "supernet"
    }  # fmt: skip
    assert "It distilled from the" in report and "the better on held-out rows" in report
    assert "ranked by exp(-divergence from the largest sub-network)" in report  # search.metric's default
    figures = json.loads((demo_run / "report.json").read_text())
    assert figures["search"]["metric"] == "distillation" and figures["search"]["axis"]["full"] == pytest.approx(1.0)
    assert 0.0 < figures["held_out_accuracy"]["chosen"] <= 1.0  # the task score, whatever the search ranked by
    assert figures["parity"]["supernet_vs_sliced_max_abs"] <= 1e-5
    assert figures["macs"] < figures["macs_full"]
    assert figures["predicted_ms"]["chosen"] <= figures["budget"]["latency"]
    assert {s["runtime"] for s in figures["speedups"]} == {"onnxruntime", "openvino"}
    assert figures["accuracy"]["quantization"]["accuracy_int8"] is not None
    pareto = json.loads((demo_run / "06_search" / "pareto.json").read_text())
    assert pareto["points"] and any("measured_latency_ms" in p for p in pareto["points"])

    bundle = demo_run / "08_export" / "bundle"
    tokenizer = AutoTokenizer.from_pretrained(bundle / "pytorch")
    enc = tokenizer(["the movie was not good but the cast was great"], return_tensors="np")
    feeds = {k: v.astype(np.int64) for k, v in enc.items()}
    torch_model = AutoModelForSequenceClassification.from_pretrained(bundle / "pytorch", trust_remote_code=True)
    expected = torch_model(**{k: __import__("torch").from_numpy(v) for k, v in feeds.items()}).logits.detach().numpy()
    session = ort.InferenceSession(str(bundle / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    onnx_logits = session.run(None, {k: v for k, v in feeds.items() if k in names})[0]
    np.testing.assert_allclose(onnx_logits, expected, atol=1e-4)
    core = ov.Core()
    for ir in ("openvino", "openvino-int8"):
        compiled = core.compile_model(str(bundle / ir / "openvino_model.xml"), "CPU")
        logits = next(iter(compiled({k: v for k, v in feeds.items() if k in names}).values()))
        assert logits.shape == expected.shape


@pytest.mark.integration
def test_rerun_skips_finished_stages_and_redoes_an_unrecorded_one(demo_run, capsys):
    before = read_state(demo_run)
    state = json.loads((demo_run / "pipeline_state.json").read_text())
    del state["stages"]["09_report"]
    (demo_run / "pipeline_state.json").write_text(json.dumps(state))
    capsys.readouterr()
    assert main(["demo", "--size", "tiny", "--out", str(demo_run)]) == 0
    out = capsys.readouterr().out
    after = read_state(demo_run)
    for name in STAGE_NAMES[:-1]:
        assert after["stages"][name] == before["stages"][name]
        assert f"{name}: done earlier" in out
    assert "[9/9] 09_report ..." in out and after["stages"]["09_report"]["status"] == "done"


@pytest.mark.integration
def test_interrupted_search_resumes_from_its_storage(demo_run, capsys):
    # An interrupted search leaves its work dir (with search_trials.jsonl) behind and no completion record.
    shutil.move(demo_run / "06_search", demo_run / "06_search.partial")
    state = json.loads((demo_run / "pipeline_state.json").read_text())
    state["stages"]["06_search"] = {"status": "running"}
    (demo_run / "pipeline_state.json").write_text(json.dumps(state))
    assert main(["demo", "--size", "tiny", "--out", str(demo_run)]) == 0
    assert "06_search (resuming)" in capsys.readouterr().out
    summary = json.loads((demo_run / "06_search" / "search_summary.json").read_text())
    assert summary["new_evaluations"] == 0  # every evaluation came back from the storage
    assert read_state(demo_run)["stages"]["06_search"]["resumed"] is True


@pytest.mark.integration
def test_the_supernet_stage_describes_its_directory(demo_run):
    descriptor = json.loads((demo_run / "05_supernet" / "supernet.json").read_text())
    config = yaml.safe_load((demo_run / "pipeline.yaml").read_text())
    assert descriptor["format_version"] == 1 and descriptor["task"] == config["data"]["task"]
    assert descriptor["search_space"]["kind"] == config["space"]["kind"] == "eftnas"
    assert descriptor["training"]["strategy"] == config["supernet"]["strategy"]
    assert descriptor["teacher"].endswith("01_teacher") and descriptor["seed"] == config["seed"]
    assert not (demo_run / "05_supernet" / "train_config.json").exists()


@pytest.mark.integration
def test_a_run_dir_from_before_the_descriptor_and_space_kind_still_runs(demo_run, capsys):
    # pipeline.yaml without space.kind, and a super-network dir with the old pipeline train_config.json only.
    config = yaml.safe_load((demo_run / "pipeline.yaml").read_text())
    del config["space"]["kind"]
    (demo_run / "pipeline.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    supernet = demo_run / "05_supernet"
    descriptor = json.loads((supernet / "supernet.json").read_text())
    (supernet / "supernet.json").unlink()
    legacy = {"task": descriptor["task"], "seed": descriptor["seed"], **descriptor["data"], "strategy": "full"}
    (supernet / "train_config.json").write_text(json.dumps(legacy))
    shutil.rmtree(demo_run / "06_search")
    state = json.loads((demo_run / "pipeline_state.json").read_text())
    del state["stages"]["06_search"]
    (demo_run / "pipeline_state.json").write_text(json.dumps(state))
    assert main(["demo", "--size", "tiny", "--out", str(demo_run)]) == 0
    assert "06_search: done in" in capsys.readouterr().out


@pytest.mark.integration
def test_changed_config_and_foreign_dirs_are_refused(demo_run, tmp_path, capsys):
    config = demo_run / "pipeline.yaml"
    code = main(["run", "--config", str(config), "--set", "search.evals=41"])
    assert code == 2
    assert "another config (changed: search.evals)" in capsys.readouterr().err
    assert yaml.safe_load(config.read_text())["search"]["evals"] != 41
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["demo", "--size", "tiny", "--out", str(tmp_path / "other")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("name", ["sst2_local", "squad_local", "mac_budget"])
def test_example_configs_are_valid(name, shared_data, monkeypatch):
    root = Path(__file__).resolve().parents[1]  # example paths are relative to the repository root
    monkeypatch.chdir(root)
    config = load_config(root / "examples" / f"{name}.yaml")
    # As written: offline (a model from a config with the shared tokenizer) and with data files that exist.
    assert config.model.name is None and Path(config.model.tokenizer).is_dir()
    assert Path(config.data.train_file).is_file() and Path(config.data.dev_file).is_file()


def test_a_relative_budget_always_leaves_the_smallest_subnet_feasible():
    from eftnas_deploy import ModelGeometry, SearchSpace, SubnetConfig
    from eftnas_deploy.app.pipeline.stages import relative_budget_ms

    geometry = ModelGeometry("bert", 2, 4, 16, 64, 128, 100, 64, 2)
    space = SearchSpace(heads=[[4, 1]] * 2, ffn=[[128, 32]] * 2)
    smallest, full = space.smallest(), SubnetConfig.full(geometry)
    latency = {smallest: 2.0, full: 10.0}
    assert relative_budget_ms(latency.__getitem__, space, geometry, 0.5) == pytest.approx(6.0)
    assert relative_budget_ms(latency.__getitem__, space, geometry, 1.0) == pytest.approx(10.0)
    noisy = {smallest: 0.077, full: 0.069}  # timer noise inverted the two (seen on the tiny demo)
    assert relative_budget_ms(noisy.__getitem__, space, geometry, 0.5) >= 0.077


@pytest.mark.integration
def test_final_finetune_resumes_from_its_checkpoint_after_a_crash(demo_run, capsys, monkeypatch):
    from transformers import Trainer

    shutil.rmtree(demo_run / "07_finetune")
    state = json.loads((demo_run / "pipeline_state.json").read_text())
    state["stages"]["07_finetune"] = {"status": "running"}
    (demo_run / "pipeline_state.json").write_text(json.dumps(state))
    original = Trainer._save_checkpoint

    def save_then_die(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise KeyboardInterrupt("killed right after the first checkpoint")

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        main(["demo", "--size", "tiny", "--out", str(demo_run)])
    checkpoints = list((demo_run / "07_finetune.partial" / "checkpoints").glob("checkpoint-*"))
    assert len(checkpoints) == 1
    monkeypatch.setattr(Trainer, "_save_checkpoint", original)
    capsys.readouterr()
    assert main(["demo", "--size", "tiny", "--out", str(demo_run)]) == 0
    assert "07_finetune (resuming)" in capsys.readouterr().out
    record = read_state(demo_run)["stages"]["07_finetune"]
    assert record["status"] == "done" and record["resumed"] is True
    assert record["outputs"]["resumed_from"].endswith(checkpoints[0].name)
    assert not (demo_run / "07_finetune.partial").exists()
    scores = record["outputs"]["scores"]["held_out"]
    assert set(scores) == {"before", "after"}


@pytest.mark.integration
def test_demo_bundle_tokenizer_positions_and_labels_agree(demo_run):
    from transformers import AutoTokenizer

    bundle = demo_run / "08_export" / "bundle"
    manifest = json.loads((bundle / "bundle.json").read_text())
    positions = manifest["parent_geometry"]["max_position_embeddings"]
    assert manifest["macs_seq_len"] <= positions and manifest["tokenizer_max_length"] <= positions
    for directory in ("pytorch", "onnx", "openvino", "openvino-int8"):
        assert AutoTokenizer.from_pretrained(bundle / directory).model_max_length <= positions
        config = json.loads((bundle / directory / "config.json").read_text())
        assert config["id2label"] == {"0": "negative", "1": "positive"}


def test_yaml_exponent_without_a_dot_is_a_number(tmp_path):
    # YAML 1.1 reads `3e-4` as a string; a float field takes it as the number the user meant.
    (tmp_path / "p.yaml").write_text("model:\n  name: bert-base-uncased\nteacher:\n  lr: 3e-4\n")
    assert load_config(tmp_path / "p.yaml").teacher.lr == 3e-4
    assert load_config(tmp_path / "p.yaml", {"supernet.lr": "1E-5"}).supernet.lr == 1e-5
    with pytest.raises(EftnasError, match=r"teacher\.lr: expected a number, got '3e-4x'"):
        load_config(tmp_path / "p.yaml", {"teacher.lr": "3e-4x"})


@pytest.mark.integration
def test_final_finetune_distils_from_the_teacher_or_the_supernets_largest_subnet(demo_run):
    import dataclasses

    import torch
    from transformers import AutoTokenizer

    from eftnas_deploy.app.pipeline.context import SUPERNET, RunContext
    from eftnas_deploy.app.pipeline.stages import SPACE_FILE, _finetune_teacher, _load_supernet
    from eftnas_deploy.core.space import SearchSpace

    config = load_config(demo_run / "pipeline.yaml")

    def teacher_for(choice: str):
        cfg = dataclasses.replace(config, finetune=dataclasses.replace(config.finetune, teacher=choice))
        ctx = RunContext(cfg, demo_run)
        held_out = ctx.split("held_out", AutoTokenizer.from_pretrained(str(demo_run / SUPERNET)))
        return _finetune_teacher(ctx, held_out)

    ids = torch.randint(5, 100, (2, 12))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    net = _load_supernet(RunContext(config, demo_run), demo_run / SUPERNET)
    net.set_subnet(SearchSpace.load(demo_run / SUPERNET / SPACE_FILE).largest())
    logits = {}
    with torch.no_grad():
        expected = net.model.eval()(**inputs).logits
        for choice in ("teacher", "supernet", "best"):
            model, record = teacher_for(choice)
            assert not model.training
            logits[choice] = model(**inputs).logits
            if choice == "best":
                scores = record["held_out_scores"]
                assert record["teacher"] == ("supernet" if scores["supernet"] > scores["teacher"] else "teacher")
                best = record["teacher"]
    assert torch.allclose(logits["supernet"], expected, atol=1e-5)
    assert not torch.allclose(logits["teacher"], expected, atol=1e-3)  # trained on: the two differ
    assert torch.equal(logits["best"], logits[best])
