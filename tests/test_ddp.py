"""A 2-process CPU torchrun (gloo) run of SuperNetTrainer trains and keeps the ranks in sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import psutil
import pytest

from tests.conftest import SHARED_DATA

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"


@pytest.mark.integration
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data not found")
def test_two_process_torchrun_trains(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.Popen([*cmd, str(SCRIPT), str(tmp_path)], env=env, stdout=PIPE, stderr=PIPE, text=True)
    try:
        _, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        # torchrun starts its workers in their own sessions: kill the whole tree, not just the launcher.
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.communicate()
        pytest.fail("torchrun did not finish within 300 s")
    assert proc.returncode == 0, stderr[-4000:]
    result = json.loads((tmp_path / "ddp_result.json").read_text())
    assert result["world_size"] == 2 and result["global_step"] == 6
    assert result["ranks_in_sync"]
    assert result["loss_after"] < result["loss_before"]
