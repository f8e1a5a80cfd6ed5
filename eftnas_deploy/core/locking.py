"""An exclusive lock on a run or search directory, so two writers never interleave one run.

The lock is an OS file lock (`filelock`, flock on Linux) on `DIR/.eftnas.lock`: the kernel drops it when its
process dies, so a kill -9 never leaves a stale lock behind. The file is removed again on release (filelock
re-checks that a lock file it opened is still linked, so the removal is safe against a concurrent acquirer).
A second process asking for the same directory is refused at once with a clear message, not made to wait.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock, Timeout

from eftnas_deploy.core.errors import OutputDirError
from eftnas_deploy.core.io import LOCK_FILE

_held: dict[Path, int] = {}  # directories this process holds, with a re-entry count


@contextmanager
def exclusive_dir(path: str | Path, what: str = "out") -> Iterator[Path]:
    """Hold the lock of directory `path` (created if missing) for the block; re-entrant within a process.

    Raises OutputDirError naming `what` when another process holds it. A directory this call created is
    removed again if the block fails and leaves it empty.
    """
    path = Path(path).resolve()
    if path in _held:
        _held[path] += 1
        try:
            yield path
        finally:
            _held[path] -= 1
        return
    created = [p for p in (path, *path.parents) if not p.exists()]  # innermost first
    path.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path / LOCK_FILE), timeout=0, is_singleton=False)
    try:
        lock.acquire()
    except Timeout:
        raise OutputDirError(
            f"{what}: {path} is in use by another eftnas-deploy process (lock {path / LOCK_FILE}); "
            "wait for it to finish or use another directory"
        ) from None
    _held[path] = 1
    ok = False
    try:
        yield path
        ok = True
    finally:
        del _held[path]
        with suppress(OSError):
            os.unlink(path / LOCK_FILE)
        lock.release()
        if not ok:  # a failed call leaves no directory it created behind (rmdir only removes empty ones)
            for directory in created:
                with suppress(OSError):
                    directory.rmdir()
