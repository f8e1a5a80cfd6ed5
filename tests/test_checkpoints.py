"""Resuming skips a checkpoint that a kill left half-written (no or torn trainer_state.json)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from eftnas_deploy.app.cli import main
from eftnas_deploy.training.checkpoints import last_complete_checkpoint
from tests.conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]


def _checkpoint(root: Path, step: int, state: str | None = '{"global_step": 1}', weights: bool = True) -> Path:
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if weights:
        (path / "model.safetensors").write_bytes(b"x")
    if state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def test_the_last_complete_checkpoint_wins_and_incomplete_ones_are_removed(tmp_path):
    good = _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 20, state=None)  # killed before trainer_state.json
    _checkpoint(tmp_path, 30, state='{"global_st')  # killed while writing it
    _checkpoint(tmp_path, 40, weights=False)
    _checkpoint(tmp_path, 5)
    messages: list[str] = []
    assert last_complete_checkpoint(tmp_path, log=messages.append) == str(good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10", "checkpoint-5"]
    assert len(messages) == 4 and "checkpoint-40 is incomplete (no model weights" in messages[0]
    assert "trainer_state.json is torn" in messages[1] and "no trainer_state.json" in messages[2]
    assert "resuming from" in messages[3]
    assert last_complete_checkpoint(tmp_path / "missing") is None


# Kill the process with SIGKILL right after the RNG state of checkpoint-6 is written, before trainer_state.json:
# exactly what a kill -9 during a checkpoint write leaves behind.
KILL_DURING_SAVE = """
import os, signal, sys
from transformers import Trainer
original = Trainer._save_rng_state
def save_then_die(self, output_dir):
    original(self, output_dir)
    if self.state.global_step == 6:
        os.kill(os.getpid(), signal.SIGKILL)
Trainer._save_rng_state = save_then_die
from eftnas_deploy.app.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data not found")
def test_a_kill_while_writing_a_checkpoint_resumes_from_the_previous_one(tmp_path, capsys):
    from eftnas_deploy.supernet.elastic import SuperNetwork
    from tests.conftest import tiny_model
    from tests.training_utils import tokenizer

    model_dir = tmp_path / "model"
    SuperNetwork(tiny_model(vocab_size=30522, num_hidden_layers=2)).save_pretrained(model_dir)
    tokenizer().save_pretrained(model_dir)
    out = tmp_path / "supernet"
    args = ["train-supernet", "--task", "sst2", "--train-file", str(SHARED_DATA / "glue" / "SST-2" / "train.tsv"),
            "--max-train-rows", "80", "--model", str(model_dir), "--max-steps", "8", "--save-steps", "3",
            "--batch-size", "8", "--max-length", "24", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, *args], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    checkpoints = Path(f"{out}.partial") / "checkpoints"  # the run's work dir, as a pipeline stage's
    torn = checkpoints / "checkpoint-6"
    assert torn.is_dir() and not (torn / "trainer_state.json").exists()
    assert not out.exists()

    assert main([*args, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "checkpoint-6 is incomplete (no trainer_state.json" in printed
    assert f"resuming from {checkpoints / 'checkpoint-3'}" in printed
    training = json.loads((out / "supernet.json").read_text())["training"]
    assert training["resumed_from"] == "checkpoint-3" and training["max_steps"] == 8
    assert not Path(f"{out}.partial").exists()  # renamed to `out` once finished
