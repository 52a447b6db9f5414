"""One writer per run folder: an advisory lock on ``RUN_DIR/.lock``.

Training, resuming and every experiment trial hold :func:`run_lock` on their run folder
while they write into it; a second writer gets a one-line :class:`RunLockedError` naming
the holder's pid. The lock is ``flock`` on an open file, which the kernel releases when
the holding process ends however it ends, so the lock of a process killed with
``kill -9`` never blocks the next ``grokscope resume``. The file itself stays (deleting
it would let two processes lock two different files); while held it names the holder.

The lock is re-entrant within a process (``train_or_resume`` calls ``train``, which
locks again). Readers (reports, analyses, ``load_checkpoint``) take no lock: every file a
run writes is replaced atomically, so a reader sees a complete old or new file.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from interp.errors import GrokscopeError

LOCK_FILE = ".lock"

_held: dict[Path, tuple[int, int]] = {}
"""Run folders this process holds: resolved path -> (file descriptor, depth)."""
_guard = threading.Lock()


class RunLockedError(GrokscopeError, RuntimeError):
    """Another process is writing into the run folder."""


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    pid, _, host = text.partition(" ")
    if not pid.isdigit():
        return "another process (pid not yet written)"
    return f"pid {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the write lock of ``run_dir`` (created if needed) for the ``with`` block; yields the folder.

    Raises :class:`RunLockedError` at once, without waiting, if another process holds it.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunLockedError(f"{run_dir} is a file, not a run directory; pick a new --out")
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    key = run_dir.resolve()
    with _guard:
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
        else:
            fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise RunLockedError(
                    f"{run_dir} is being written by {holder}; wait for it to finish or pick another --out"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
            _held[key] = (fd, 1)
    try:
        yield run_dir
    finally:
        with _guard:
            fd, depth = _held[key]
            if depth > 1:
                _held[key] = (fd, depth - 1)
            else:
                del _held[key]
                try:
                    os.ftruncate(fd, 0)
                    if created and os.listdir(key) == [LOCK_FILE]:  # refused before writing: leave no folder behind
                        os.unlink(key / LOCK_FILE)
                        os.rmdir(key)
                except OSError:
                    pass
                finally:
                    os.close(fd)  # closing the last descriptor releases the flock


F = TypeVar("F", bound=Callable[..., Any])


def holding_run_lock(run_dir_of: Callable[..., str | Path], *, create: bool = True) -> Callable[[F], F]:
    """Decorate a function that writes into a run folder so that it runs under :func:`run_lock`.

    ``run_dir_of`` receives the call's arguments and returns the folder. A path that is a file,
    or (``create=False``) one that does not exist, is left to the function's own one-line error.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            run_dir = Path(run_dir_of(*args, **kwargs))
            if (run_dir.exists() and not run_dir.is_dir()) or (not create and not run_dir.exists()):
                return fn(*args, **kwargs)
            with run_lock(run_dir):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def is_locked(run_dir: str | Path) -> bool:
    """Does some process (this one included) hold the write lock of ``run_dir``."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return False
    if Path(run_dir).resolve() in _held:
        return True
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


__all__ = ["LOCK_FILE", "RunLockedError", "holding_run_lock", "is_locked", "run_lock"]
