"""Atomic output directories and small JSON helpers."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eftnas_deploy.errors import OutputDirError


def check_output_dir(path: str | Path, overwrite: bool) -> Path:
    """Refuse a non-empty directory (or a file) unless overwrite is set."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"out: {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise OutputDirError(f"out: {path} is not empty; pass --overwrite (overwrite=True) to replace it")
    return path


@contextmanager
def atomic_output_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` only if the block succeeds.

    On failure nothing is left at `path` (an existing directory stays as it was).
    """
    path = check_output_dir(path, overwrite).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
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
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        from eftnas_deploy.errors import EftnasError

        raise EftnasError(f"{what}: {path} is not valid JSON ({exc})") from exc
