"""Atomic output directories and small JSON helpers."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eftnas_deploy.core.errors import EftnasError, OutputDirError

LOCK_FILE = ".eftnas.lock"  # see eftnas_deploy.core.locking; never counts as content of a directory
# Temporaries of atomic_output_dir / write_json: `.NAME.tmp-PID-RANDOM`, `.NAME.old-RANDOM`, `.NAME.tmp`.
_TEMPORARY = re.compile(r"^\..+\.(tmp-\d+-[\w]+|tmp-[\w]+|old-[\w-]+|tmp)$")


def check_output_dir(path: str | Path, overwrite: bool) -> Path:
    """Refuse a non-empty directory (or a file) unless overwrite is set."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"out: {path} exists and is not a directory")
    if path.is_dir() and any(p.name != LOCK_FILE for p in path.iterdir()) and not overwrite:
        raise OutputDirError(f"out: {path} is not empty; pass --overwrite (overwrite=True) to replace it")
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_siblings(path: Path) -> list[Path]:
    """Remove temporaries an interrupted atomic_output_dir(path) left beside `path` (their process is gone)."""
    removed = []
    if not path.parent.is_dir():
        return removed
    for entry in path.parent.glob(f".{glob_escape(path.name)}.*"):
        rest = entry.name[len(path.name) + 2 :]
        pid = re.match(r"^tmp-(\d+)-", rest)
        stale = (pid is not None and not _pid_alive(int(pid.group(1)))) or rest.startswith("old-")
        if stale and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def clean_stale_temporaries(root: str | Path) -> list[Path]:
    """Remove every temporary an interrupted writer left anywhere under `root` (call it only while `root` is
    exclusively ours, e.g. a pipeline stage's work dir under the run lock); returns what was removed."""
    removed: list[Path] = []
    root = Path(root)
    if not root.is_dir():
        return removed
    for dirpath, dirnames, filenames in os.walk(root):
        for name in list(dirnames):
            if _TEMPORARY.match(name):
                shutil.rmtree(Path(dirpath) / name, ignore_errors=True)
                removed.append(Path(dirpath) / name)
                dirnames.remove(name)
        for name in filenames:
            if _TEMPORARY.match(name):
                (Path(dirpath) / name).unlink(missing_ok=True)
                removed.append(Path(dirpath) / name)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


@contextmanager
def atomic_output_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` only if the block succeeds.

    On failure nothing is left at `path` (an existing directory stays as it was).
    """
    path = check_output_dir(path, overwrite).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_siblings(path)
    # The pid in the name tells a later run whether the writer is still alive (see clean_stale_siblings).
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    backup = None
    if path.exists():
        backup = path.with_name(f".{path.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
        path.rename(backup)
    tmp.rename(path)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def read_json(path: str | Path, what: str = "file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise EftnasError(f"{what}: {path} is not a JSON file (binary content, e.g. a pickle)") from None
    except json.JSONDecodeError as exc:
        raise EftnasError(f"{what}: {path} is not valid JSON ({exc}); is it truncated?") from exc
