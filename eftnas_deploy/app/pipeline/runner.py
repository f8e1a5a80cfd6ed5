"""Run the pipeline stages in order, recording completion in run_dir/pipeline_state.json.

A stage works in `run_dir/NN_name.partial/` (where training checkpoints and the search storage survive an
interruption) and is renamed to `run_dir/NN_name/` only when it finishes, so a stage marked done never
has half its files. Re-running skips finished stages; a run dir made with another config is refused.
"""

from __future__ import annotations

import datetime
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from eftnas_deploy.app.pipeline import stages
from eftnas_deploy.app.pipeline.config import PipelineConfig
from eftnas_deploy.app.pipeline.context import (
    EXPORT,
    FINETUNE,
    IMPORTANCE,
    LUT,
    REPORT,
    SEARCH,
    SPACE,
    SUPERNET,
    TEACHER,
    RunContext,
)
from eftnas_deploy.app.pipeline.report import publish, write_report
from eftnas_deploy.core.errors import OutputDirError
from eftnas_deploy.core.io import LOCK_FILE, clean_stale_temporaries, read_json, write_json
from eftnas_deploy.core.locking import exclusive_dir

CONFIG_FILE = "pipeline.yaml"
STATE_FILE = "pipeline_state.json"
Stage = Callable[[RunContext, Path], dict[str, Any]]


STAGES: tuple[tuple[str, Stage], ...] = (
    (TEACHER, stages.teacher),
    (IMPORTANCE, stages.importance),
    (SPACE, stages.space),
    (LUT, stages.lut),
    (SUPERNET, stages.supernet),
    (SEARCH, stages.search),
    (FINETUNE, stages.finetune),
    (EXPORT, stages.export),
    (REPORT, write_report),
)


def open_run_dir(
    config: PipelineConfig, run_dir: str | Path, overwrite: bool = False, keep: Iterable[str] = ()
) -> Path:
    """Create or reopen a run dir for `config`; refuse one holding another config (or other files).

    `overwrite` starts afresh: everything but the `keep` entries (e.g. the demo's generated data) is removed.
    """
    run_dir = Path(run_dir)
    keep = {*keep, LOCK_FILE}
    recorded = run_dir / CONFIG_FILE
    entries = [p for p in run_dir.iterdir() if p.name not in keep] if run_dir.is_dir() else []
    if overwrite:
        for path in entries:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    elif recorded.is_file():
        previous = _with_defaults(yaml.safe_load(recorded.read_text()))
        if previous != config.to_dict():
            changed = _changed_keys(previous, config.to_dict())
            raise OutputDirError(
                f"out: {run_dir} holds a run with another config (changed: {', '.join(changed)}); "
                "pass --overwrite to start it afresh, or use another --out"
            )
    elif entries:
        raise OutputDirError(f"out: {run_dir} is not empty and holds no pipeline run; pass --overwrite to replace it")
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(recorded)
    return run_dir


def _with_defaults(recorded: Any) -> Any:
    """A recorded config with the fields added since it was written at their defaults (e.g. space.kind)."""
    try:
        return PipelineConfig.from_dict(recorded).to_dict()
    except Exception:  # not a valid config (any more): compared as written, so the run dir is refused
        return recorded


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [k for key in keys for k in _changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".")]


def read_state(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / STATE_FILE
    return read_json(path, "pipeline state") if path.is_file() else {"stages": {}}


def run_pipeline(
    config: PipelineConfig, run_dir: str | Path | None = None, overwrite: bool = False, keep: Iterable[str] = ()
) -> dict[str, Any]:
    """Run every unfinished stage of `config` in `run_dir` (default: config.out); returns the final state.

    Every cross-field constraint is checked before anything is written, and the run dir is locked against a
    second writer for the whole run.
    """
    from eftnas_deploy.app.pipeline.preflight import preflight

    preflight(config)
    with exclusive_dir(run_dir or config.out, what="out"):
        return _run_stages(config, open_run_dir(config, run_dir or config.out, overwrite, keep).resolve())


def _run_stages(config: PipelineConfig, run_dir: Path) -> dict[str, Any]:
    ctx = RunContext(config, run_dir)
    state = read_state(run_dir)
    for number, (name, stage) in enumerate(STAGES, start=1):
        final, work = run_dir / name, run_dir / f"{name}.partial"
        record = state["stages"].get(name)
        if record and record.get("status") == "done" and final.is_dir():
            print(f"[{number}/{len(STAGES)}] {name}: done earlier ({record['wall_s']} s), skipped", flush=True)
            continue
        resuming = work.is_dir()
        for stale in clean_stale_temporaries(work) if resuming else ():
            print(f"    removed {stale.relative_to(run_dir)} (left by an interrupted write)", flush=True)
        print(f"[{number}/{len(STAGES)}] {name}{' (resuming)' if resuming else ''} ...", flush=True)
        work.mkdir(exist_ok=True)
        state["stages"][name] = {"status": "running", "started_at": _now()}
        write_json(run_dir / STATE_FILE, state)
        start = time.perf_counter()
        outputs = stage(ctx, work)
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
        wall = round(time.perf_counter() - start, 1)
        state["stages"][name] = {
            "status": "done",
            "wall_s": wall,
            "finished_at": _now(),
            "resumed": resuming,
            "outputs": outputs,
        }
        write_json(run_dir / STATE_FILE, state)
        print(f"[{number}/{len(STAGES)}] {name}: done in {wall} s", flush=True)
    publish(run_dir / REPORT, run_dir)
    return state


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
