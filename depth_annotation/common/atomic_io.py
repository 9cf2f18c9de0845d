"""Crash-safe file writes: write a temporary file beside the target, fsync, rename.

A reader (or a rerun after a crash) sees either the old file or the complete new
one, never a half-written file. `ExclusiveLock` and `exchange_dirs` do the same for a whole
directory: one writer at a time, published in one atomic step.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write `data` as indented JSON (NaN is written as null: JSON has no NaN)."""
    return write_text(path, json.dumps(_nan_to_none(data), indent=2, sort_keys=False) + "\n")


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


class LockHeldError(OSError):
    """Another process holds the lock; `holder` is what it wrote into the lock file."""

    def __init__(self, path: Path, holder: dict[str, Any]) -> None:
        self.path, self.holder = path, holder
        who = ", ".join(f"{k} {holder[k]}" for k in ("pid", "started", "command") if k in holder) or "unknown holder"
        super().__init__(errno.EWOULDBLOCK, f"{path} is locked by another process ({who})")


class ExclusiveLock:
    """An OS advisory lock (`fcntl.flock`, non-blocking) on a lock file, holding who took it.

    The kernel drops the lock when the process ends, however it ends (SIGKILL included), so
    a stale lock file never blocks anyone: only a live holder does. The holder writes its
    pid, command line and start time into the file for whoever is refused.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.fd = -1

    def acquire(self) -> ExclusiveLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: the holder's note stays readable
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 65536, 0).decode("utf-8", "replace") or "{}")
            except json.JSONDecodeError:
                holder = {}
            os.close(fd)
            raise LockHeldError(self.path, holder if isinstance(holder, dict) else {}) from None
        except BaseException:
            os.close(fd)
            raise
        note = {
            "pid": os.getpid(),
            "command": " ".join(sys.argv),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(note) + "\n").encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> ExclusiveLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange_dirs(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Swap two directories in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`).

    Returns False where the kernel, libc or filesystem cannot (the caller then renames in two
    steps); raises OSError for anything else (permission, a missing path).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), os.fsdecode(a), None, os.fsdecode(b))


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
