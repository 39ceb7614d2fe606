"""An OS file lock per folder: one writer at a time, released by the kernel when its process dies.

``fcntl.flock`` on ``<folder>/.lock``: a second process asking for the same folder either waits up to
``wait_s`` seconds or raises :class:`FolderBusy`, whose message names the process holding it (pid, host,
command, start time, read from the lock file). A run killed with SIGKILL leaves the file but not the lock,
so the next run takes it over at once; the file itself is never deleted while anyone may hold it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from deepeut.errors import StageError

LOCK = ".lock"


class FolderBusy(StageError):
    """Another live process holds the folder's lock."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    return (
        f"pid {info.get('pid', '?')} on {info.get('host', '?')} (started {info.get('started', '?')}: "
        f"{info.get('command', '?')})"
    )


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


@contextmanager
def folder_lock(folder: str | os.PathLike, wait_s: float = 0.0, poll_s: float = 1.0) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` for the ``with`` block.

    ``wait_s``: seconds to wait for a busy folder (0: fail at once; negative: wait forever).
    Raises :class:`FolderBusy` naming the holder when the lock is not had in time.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = None if wait_s < 0 else time.monotonic() + wait_s
        while not _try_lock(fd):
            if deadline is not None and time.monotonic() >= deadline:
                raise FolderBusy(
                    f"{folder} is in use by {_holder(path)}; wait for it to finish (its results are "
                    "then reused), or run with another pipeline.cache_dir"
                )
            time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.write(
            fd,
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "command": " ".join(sys.argv)[:300],
                }
            ).encode(),
        )
        os.fsync(fd)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
