"""Kills and concurrent writers: stale temporaries, the directory lock, the demo's data, and a pipeline killed with
SIGKILL at every stage that resumes to a complete bundle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from eftnas_deploy.app.cli import main
from eftnas_deploy.core.errors import OutputDirError
from eftnas_deploy.core.io import LOCK_FILE, atomic_output_dir, clean_stale_temporaries
from eftnas_deploy.core.locking import exclusive_dir

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_are_removed(tmp_path):
    work = tmp_path / "08_export.partial"
    (work / ".bundle.tmp-123-abc" / "onnx").mkdir(parents=True)
    (work / "pareto" / ".00.tmp-456-xyz").mkdir(parents=True)
    (work / ".deployment.json.tmp").write_text("{")
    (work / "bundle").mkdir()
    (work / "bundle" / "bundle.json").write_text("{}")
    removed = {p.relative_to(work).as_posix() for p in clean_stale_temporaries(work)}
    assert removed == {".bundle.tmp-123-abc", "pareto/.00.tmp-456-xyz", ".deployment.json.tmp"}
    assert (work / "bundle" / "bundle.json").is_file()

    # Beside an atomic output dir, only the temporaries of writers that are gone are removed.
    out = tmp_path / "bundle"
    stale = tmp_path / f".bundle.tmp-{_dead_pid()}-abc"
    live = tmp_path / f".bundle.tmp-{os.getpid()}-def"
    stale.mkdir()
    live.mkdir()
    with atomic_output_dir(out) as tmp:
        (tmp / "x").write_text("x")
    assert not stale.exists() and live.exists() and (out / "x").is_file()


HOLD = """
import sys, time
from eftnas_deploy.core.locking import exclusive_dir
with exclusive_dir(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_is_refused_and_a_killed_holder_frees_the_dir(tmp_path, capsys):
    out = tmp_path / "search"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputDirError, match="in use by another eftnas-deploy process"), exclusive_dir(out):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with exclusive_dir(out):  # the kernel dropped the dead holder's lock
        assert (out / LOCK_FILE).is_file()
    assert not (out / LOCK_FILE).exists()  # and a released lock leaves no file behind
    capsys.readouterr()


def test_reentrant_lock_and_a_failed_first_call_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    with exclusive_dir(out), exclusive_dir(out):  # the pipeline re-takes the demo's lock
        pass
    assert out.is_dir() and not any(out.iterdir())
    fresh = tmp_path / "fresh" / "nested" / "run"
    with pytest.raises(RuntimeError), exclusive_dir(fresh):
        raise RuntimeError("bad input")
    assert not (tmp_path / "fresh").exists()


# The demo's data generation, killed with SIGKILL after the TSV files and before the tokenizer.
KILL_IN_DATA = """
import os, signal, sys
import eftnas_deploy.app.commands.demo as demo
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
demo.train_tokenizer = die
from eftnas_deploy.app.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.integration
def test_the_demo_resumes_after_a_kill_during_data_generation(tmp_path, monkeypatch, capsys):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-c", KILL_IN_DATA, "demo", "--size", "tiny", "--out", str(out)], env=ENV)
    assert proc.returncode == -signal.SIGKILL
    assert [p.name for p in out.iterdir() if p.name.startswith(".data.tmp-")]  # what the kill left

    calls = []
    monkeypatch.setattr("eftnas_deploy.app.pipeline.runner.run_pipeline", lambda *a, **k: calls.append(a))
    assert main(["demo", "--size", "tiny", "--out", str(out)]) == 0
    assert calls and (out / "data" / "tokenizer" / "tokenizer.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["data"]
    capsys.readouterr()


def test_save_sliced_points_auto_map_at_the_toolkits_own_code(tmp_path):
    from eftnas_deploy import SubnetConfig, SuperNetwork
    from eftnas_deploy.supernet.slicing import load_sliced, save_sliced, slice_subnet
    from tests.conftest import tiny_model

    supernet = SuperNetwork(tiny_model())
    dense = slice_subnet(supernet, SubnetConfig(heads=[4, 2, 1], ffn=[128, 64, 0]))
    dense.config.auto_map = {"AutoModelForSequenceClassification": "someone--else.modeling.Model"}
    save_sliced(dense, tmp_path / "sliced")
    config = json.loads((tmp_path / "sliced" / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoModelForSequenceClassification": "modeling_eftnas.EftnasBertForSequenceClassification"
    }
    assert load_sliced(tmp_path / "sliced") is not None


def test_a_lut_meant_to_replace_the_target_is_announced_and_recorded(tmp_path, capsys):
    from eftnas_deploy.app.pipeline.config import PipelineConfig
    from eftnas_deploy.app.pipeline.preflight import load_lut_file
    from tests.conftest import tiny_model
    from tests.test_bad_inputs import fake_lut

    geometry = __import__("eftnas_deploy").SuperNetwork(tiny_model()).geometry
    lut = tmp_path / "lut.json"
    fake_lut(geometry, "openvino", threads=2, seq_len=48).save(lut)
    config = PipelineConfig.from_dict(
        {"model": {"name": "x"}, "lut": {"file": str(lut), "allow_approximate": True, "seq_len": 32}}
    )
    table, origin = load_lut_file(config, geometry)
    assert table.threads == 2
    replaced = origin["replaces_config_target"]
    assert replaced["config"]["runtime"] == "onnxruntime" and replaced["lut"]["runtime"] == "openvino"
    assert any(d.startswith("seq_len: LUT has 48") for d in replaced["differences"])
    assert "it replaces the configured target" in capsys.readouterr().out


# -- a real pipeline, killed with SIGKILL at several points ---------------------------------------------------------
def _pipeline_config(run_dir: Path) -> Path:
    from eftnas_deploy.app.commands.demo import demo_config, write_task

    write_task(run_dir.parent / "data", 600, 100, seed=0)
    cfg = demo_config(run_dir, "tiny", 0)
    data = run_dir.parent / "data"
    cfg["data"].update(train_file=str(data / "train.tsv"), dev_file=str(data / "dev.tsv"))
    cfg["model"]["tokenizer"] = str(data / "tokenizer")
    cfg["teacher"]["epochs"] = 2.0
    cfg["importance"]["steps"] = 10
    cfg["lut"].update(warmup=1, repeats=3, min_time_s=0.02, calibration=2, validate_samples=2)
    cfg["supernet"].update(epochs=1.0, save_steps=4)
    cfg["search"].update(evals=60, remeasure_top=1)
    cfg["export"] = {"formats": ["pytorch", "onnx"], "calibration_size": 16, "eval_size": 50, "benchmark_repeats": 3}
    path = run_dir.parent / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _run_until(config: Path, ready, what: str, timeout: float = 600) -> subprocess.CompletedProcess | None:
    """Start the pipeline; SIGKILL it once `ready()` holds (None if it did), else return its completed run."""
    log = config.parent / "log.txt"
    with log.open("a") as handle:
        handle.write(f"\n===== run until {what}\n")
        handle.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "eftnas_deploy.app.cli", "run", "--config", str(config)],
            env=ENV, stdout=handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if ready is not None and ready():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return None
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            pytest.fail(f"pipeline did not reach {what} in {timeout} s:\n{log.read_text()[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, log.read_text(), "")


@pytest.mark.slow
def test_a_pipeline_killed_at_every_stage_resumes_to_a_complete_bundle(tmp_path):
    run = tmp_path / "run"
    config = _pipeline_config(run)

    def lines(path: Path) -> int:
        return len(path.read_text().splitlines()) if path.is_file() else 0

    kill_points = [
        ("a teacher checkpoint", lambda: any((run / "01_teacher.partial").glob("checkpoints/checkpoint-*"))),
        ("the LUT stage", lambda: (run / "04_lut.partial").is_dir()),
        ("a super-network checkpoint", lambda: any((run / "05_supernet.partial").glob("checkpoints/checkpoint-*"))),
        ("the search's 10th trial", lambda: lines(run / "06_search.partial" / "search_trials.jsonl") > 10),
        ("a fine-tune checkpoint", lambda: any((run / "07_finetune.partial").glob("checkpoints/checkpoint-*"))),
        ("the bundle being exported", lambda: any((run / "08_export.partial").glob(".bundle.tmp-*"))),
    ]  # fmt: skip
    for what, ready in kill_points:
        done = _run_until(config, ready, what)
        assert done is None, f"the pipeline finished before {what} (rc {done.returncode}):\n{done.stdout[-3000:]}"
    final = _run_until(config, None, "the end")
    assert final.returncode == 0, final.stdout[-4000:]

    state = json.loads((run / "pipeline_state.json").read_text())["stages"]
    assert all(s["status"] == "done" for s in state.values())
    for stage in ("01_teacher", "04_lut", "05_supernet", "06_search", "07_finetune", "08_export"):
        assert state[stage]["resumed"] is True, stage
    assert not [p for p in run.rglob("*") if ".tmp" in p.name or ".partial" in p.name or p.name == LOCK_FILE]

    trials = (run / "06_search" / "search_trials.jsonl").read_text().splitlines()
    assert len(trials) == 61  # the header and exactly `evals` trials: none lost, none repeated
    assert json.loads((run / "06_search" / "search_summary.json").read_text())["trials"] == 60

    bundle = run / "08_export" / "bundle"
    manifest = json.loads((bundle / "bundle.json").read_text())
    chosen = json.loads((run / "06_search" / "subnet.json").read_text())
    assert manifest["subnet"] == {"heads": chosen["heads"], "ffn": chosen["ffn"]}
    assert sorted(manifest["formats"]) == ["onnx", "pytorch"]
    assert all(p["ok"] for p in manifest["parity"].values())
    assert (run / "report.md").is_file()
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(bundle / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.ones((1, 16), dtype=np.int64) for i in session.get_inputs()}
    assert np.isfinite(session.run(None, feeds)[0]).all()
