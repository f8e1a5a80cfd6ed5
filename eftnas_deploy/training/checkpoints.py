"""Pick the Trainer checkpoint to resume from, skipping one a kill left half-written.

The HF Trainer writes `checkpoint-N/` in place: weights, optimizer, scheduler and RNG state, and
`trainer_state.json` last. A kill in between leaves a directory `get_last_checkpoint` still returns, and
every resume then fails on the missing (or torn) `trainer_state.json`. Here a checkpoint counts only when
its `trainer_state.json` parses and its weights are present; incomplete ones are removed and reported.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"
WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


def checkpoint_problem(path: Path) -> str | None:
    """Why `path` cannot be resumed from (None when it is complete)."""
    state = path / STATE_FILE
    if not state.is_file():
        return f"no {STATE_FILE}"
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return f"{STATE_FILE} is torn"
    if not isinstance(data, dict) or "global_step" not in data:
        return f"{STATE_FILE} has no global_step"
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        return "no model weights"
    return None


def last_complete_checkpoint(directory: str | Path, remove_incomplete: bool = True, log=print) -> str | None:
    """The newest complete `checkpoint-N` in `directory` (None if there is none).

    Newer incomplete checkpoints are reported through `log` and, with `remove_incomplete`, deleted, so the
    Trainer neither trips over them nor counts them when it rotates checkpoints.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = sorted(
        ((int(m.group(1)), p) for p in directory.iterdir() if p.is_dir() and (m := CHECKPOINT.match(p.name))),
        reverse=True,
    )
    skipped = False
    for _, path in found:
        problem = checkpoint_problem(path)
        if problem is None:
            if skipped:
                log(f"checkpoint: resuming from {path}, the last complete one")
            return str(path)
        skipped = True
        action = "removed" if remove_incomplete else "skipped"
        log(f"checkpoint: {path} is incomplete ({problem}; interrupted while saving?), {action}")
        if remove_incomplete:
            shutil.rmtree(path, ignore_errors=True)
    return None
