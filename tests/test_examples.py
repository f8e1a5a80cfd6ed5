"""Every example under examples/ runs as written, in a reduced form (smaller model, data, steps and search)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import BertConfig

from eftnas_deploy.app.cli import main
from eftnas_deploy.app.pipeline.runner import read_state

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TINY_MODEL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}
REDUCED = {
    "model.from_config": json.dumps(TINY_MODEL),
    "data.max_train_rows": "160",
    "data.max_dev_rows": "48",
    "teacher.epochs": "1",
    "importance.steps": "3",
    "supernet.epochs": "0.5",
    "search.evals": "12",
    "space.ffn_multiple": "8",
    "space.tolerance": "0.2",
    "lut.grid": "2",
    "lut.warmup": "1",
    "lut.repeats": "3",
    "lut.min_time_s": "0.02",
    "lut.calibration": "2",
    "lut.validate_samples": "2",
    "finetune.epochs": "0.2",
    "export.calibration_size": "16",
    "export.benchmark_repeats": "3",
}
EXTRA = {
    "mac_budget": {"search.max_macs": "8"},  # the tiny model has ~12.6 M MACs at 128 tokens
    "sst2_local": {"export.formats": "[pytorch, onnx, openvino, int8]"},
    "squad_local": {"data.max_train_rows": "25", "data.max_dev_rows": "25"},
}

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (ROOT.parent / "shared" / "data").is_dir(), reason="shared data not found"),
]


def _set_args(name: str) -> list[str]:
    return [arg for key, value in {**REDUCED, **EXTRA.get(name, {})}.items() for arg in ("--set", f"{key}={value}")]


@pytest.mark.parametrize("name", ["sst2_local", "mac_budget", "squad_local"])
def test_example_config_runs_as_written(name, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # example paths are relative to the repository root, as their comments say
    out = tmp_path / name
    assert main(["run", "--config", str(EXAMPLES / f"{name}.yaml"), "--out", str(out), *_set_args(name)]) == 0
    state = read_state(out)
    assert "08_export" in state["stages"] and (out / "report.md").is_file()


def test_lut_on_target_script_runs_as_written_with_a_length_set(tmp_path):
    config = tmp_path / "config.json"
    BertConfig(**TINY_MODEL, vocab_size=30522).to_json_file(config)
    lut = tmp_path / "lut_target.json"
    measure = ["lut", "measure", "--model", str(config), "--task", "text-classification", "--runtime", "onnxruntime",
               "--threads", "1", "--seq-len", "32", "64", "--grid", "2", "--warmup", "1", "--repeats", "3",
               "--min-time", "0.02", "--calibration", "2", "--out", str(lut)]  # fmt: skip
    assert main(measure) == 0
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "OUT": str(tmp_path / "run")}
    result = subprocess.run(
        ["bash", str(EXAMPLES / "lut_on_target.sh"), str(lut), "50", *_set_args("lut_on_target")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "08_export" in read_state(tmp_path / "run")["stages"]
    # A length-set LUT (32 and 64 tokens): the search used the table at lut.seq_len, the report shows both.
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Latency by sequence length (LUT)" in report and "| 32 |" in report and "| 64 |" in report
