"""`eftnas-deploy decoder`: a tiny Llama from text to stateful OpenVINO IRs, resumable, with field errors."""

from __future__ import annotations

import json

import pytest
import yaml

from eftnas_deploy.app.cli import main
from eftnas_deploy.app.decoder.config import load_decoder_config
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.data.text import synthetic_corpus

TINY = {"model_type": "llama", "num_layers": 3, "num_heads": 4, "num_kv_heads": 2, "hidden_size": 64,
        "intermediate_size": 128}  # fmt: skip


def _config(tmp_path, **sections) -> dict:
    text = tmp_path / "train.txt"
    if not text.is_file():
        text.write_text("\n".join(synthetic_corpus(1200, seed=0)))
    config = {
        "model": {"from_config": TINY, "vocab_size": 256},
        "data": {"train": str(text), "block_size": 32, "max_dev_blocks": 16},
        "importance": {"batches": 2},
        "space": {"ffn_fractions": [1.0, 0.5, 0.25]},
        "supernet": {"steps": 30, "batch_size": 8, "lr": 0.003, "save_steps": 10},
        "lut": {"prompt_len": 8, "new_tokens": 4, "grid": 2, "calibration": 3, "validate": 2, "repeats": 2},
        # a loose budget: the tiny model's fixed part (embeddings, LM head) dominates, and timings are noisy
        "search": {"algorithm": "random", "evals": 8, "max_fraction": 0.95},
        "export": {"weights": ["fp32", "int8"], "check_tokens": 4},
        "out": str(tmp_path / "run"),
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    return config


def test_bad_fields_are_all_named_before_any_work(tmp_path):
    data = _config(tmp_path, search={"evals": 0, "objective": "tokens"}, export={"weights": "fp32,int3"})
    data["model"]["name"] = "x"
    with pytest.raises(EftnasError) as error:
        load_decoder_config(None, {k: v for k, v in data.items()} | {"data": {**data["data"], "train": None}})
    text = str(error.value)
    assert text.startswith("invalid decoder config:")
    for expected in ("search.evals: must be > 0, got 0", "search.objective: 'tokens' is not one of",
                     "export.weights.1: 'int3' is not one of", "model.name: give exactly one of",
                     "data.train: a text file or dataset name is required"):  # fmt: skip
        assert expected in text, text
    with pytest.raises(EftnasError, match=r"search.max_fraction: give max_fraction or max_ms_per_token"):
        load_decoder_config(None, {**_config(tmp_path), "search": {"max_fraction": 0.5, "max_ms_per_token": 3.0}})


def test_preflight_refuses_what_would_fail_after_training(tmp_path):
    from eftnas_deploy.app.decoder.config import DecoderRunConfig
    from eftnas_deploy.app.decoder.run import run_decoder

    config = DecoderRunConfig.from_dict(_config(tmp_path, space={"kv_groups": 3}))
    with pytest.raises(EftnasError, match=r"space.kv_groups: 3 > the model's 2 KV groups"):
        run_decoder(config)
    assert not (tmp_path / "run").exists()  # refused before the run directory was made


@pytest.mark.integration
def test_a_tiny_llama_runs_to_stateful_openvino_and_resumes(tmp_path, capsys):
    path = tmp_path / "decoder.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path)))
    assert main(["decoder", "--config", str(path), "--set", "supernet.steps=30"]) == 0
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    chosen, full = report["chosen"], report["full"]
    assert chosen["ms_per_token"] <= 0.95 * full["ms_per_token"] + 1e-9  # within the relative budget
    assert set(report["exported"]) == {"fp32", "int8"}
    # fp32 must reproduce PyTorch's greedy tokens (the stage raises otherwise); INT8 weights may flip a near-tied
    # argmax of this tiny model (which sub-network is chosen depends on the measured LUT), so it is only reported
    assert report["exported"]["fp32"]["greedy_tokens_match_pytorch"] is True
    assert isinstance(report["exported"]["int8"]["greedy_tokens_match_pytorch"], bool)
    assert report["exported"]["int8"]["size_mb"] < report["exported"]["fp32"]["size_mb"]
    for name in ("pytorch/config.json", "openvino-fp32/openvino_model.xml", "openvino-int8/openvino_model.xml"):
        assert (run / "05_export" / name).is_file()
    assert (run / "04_search" / "perplexity_vs_latency.png").is_file() and "ms/token" in (run / "report.md").read_text()
    assert not (run / "02_supernet.partial").exists()
    capsys.readouterr()
    assert main(["decoder", "--config", str(path)]) == 0  # finished: every stage is skipped
    assert capsys.readouterr().out.count("done earlier") == 5
    assert main(["decoder", "--config", str(path), "--set", "supernet.steps=31"]) == 2  # another run's dir
    assert "holds a run with other supernet settings" in capsys.readouterr().err


class _Killed(Exception):
    pass


@pytest.mark.integration
def test_a_run_killed_in_training_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    from transformers import TrainerCallback

    import eftnas_deploy.training as training
    from eftnas_deploy.app.decoder import run as decoder_run
    from eftnas_deploy.app.decoder.config import DecoderRunConfig

    class KillAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 15:  # after the checkpoint at step 10
                raise _Killed

    class KilledTrainer(training.SuperNetTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(KillAt())

    config = DecoderRunConfig.from_dict(
        _config(tmp_path, search={"evals": 4, "max_fraction": None}, export={"weights": ["fp32"]})
    )
    monkeypatch.setattr(training, "SuperNetTrainer", KilledTrainer)
    with pytest.raises(_Killed):
        decoder_run.run_decoder(config)
    run_dir = tmp_path / "run"
    state = json.loads((run_dir / decoder_run.STATE_FILE).read_text())
    assert list(state["stages"]) == ["01_model"]
    assert not (run_dir / "02_supernet").exists() and (run_dir / "02_supernet.partial" / "checkpoint-10").is_dir()
    assert not any(p.name.startswith(".02_supernet.tmp") for p in run_dir.iterdir())  # nothing half-written
    monkeypatch.undo()
    report = decoder_run.run_decoder(config)
    record = json.loads((run_dir / "02_supernet" / "supernet.json").read_text())
    assert record["resumed_from"].endswith("checkpoint-10") and not (run_dir / "02_supernet.partial").exists()
    assert report["exported"]["fp32"]["greedy_tokens_match_pytorch"]


def test_the_example_config_is_valid(monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    config = load_decoder_config("examples/decoder_tiny.yaml")
    assert config.model.from_config["model_type"] == "llama" and config.search.max_fraction == 0.6
