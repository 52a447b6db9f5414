"""A cache of finished training runs, keyed by everything that decides what they hold.

``cached_train(config, cache_dir)`` returns a run folder of ``config`` trained to its end
(grokked, or ``max_steps``). The first call trains it; every later call, in this process or
any other, returns the same folder without training. The key is a hash of

* the run config (its JSON, as ``config.json`` stores it),
* the source of the training code: every module of ``interp`` that ``interp.train.start``
  (the entry points, and through them the trainer) imports, directly or not (found by reading the imports, so an analysis module that changes
  keeps the cache),
* the torch and transformers versions (they decide the float trajectory).

A cache entry is ``CACHE/NAME-KEY/`` (an ordinary run folder: ``load_checkpoint`` reads it)
and ``CACHE/NAME-KEY.json``, the manifest: the key's parts and the size and SHA-256 of every
file of the run. Training goes into a temporary sibling folder that is renamed into place
when it ends, and the manifest is written last, so a crash leaves no entry. While a process
trains an entry it holds ``flock`` on ``CACHE/NAME-KEY.lock``; another process asking for the
same entry waits for it (or, with ``wait=False``, is told it is busy and can do other work),
then reads the finished run: parallel test workers train each run once instead of racing.
An entry whose files no longer match its manifest (a reader wrote into it) is an error; what
readers may add (:data:`DERIVED`: the per-checkpoint analyses, keyed by the checkpoint's hash,
and ``progress.jsonl``) is not part of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
import transformers

from interp.code_hash import PACKAGE_ROOT, code_hash, module_sources
from interp.errors import CheckpointError
from interp.io import atomic_write_json, read_json
from interp.lock import LOCK_FILE
from interp.train.config import RunConfig

ENTRY_MODULE = "interp.train.start"


def training_sources(root: Path = PACKAGE_ROOT, entry: str = ENTRY_MODULE) -> list[Path]:
    """Every source file under ``root`` that ``entry`` imports, directly or through other modules, sorted."""
    return module_sources([entry], root)


def training_code_hash(root: Path = PACKAGE_ROOT, entry: str = ENTRY_MODULE) -> str:
    """SHA-256 over the training modules' paths (relative to ``root``) and bytes."""
    return code_hash([entry], root)


def key_parts(config: RunConfig, code_hash: str | None = None) -> dict[str, str]:
    """What the cache key of ``config`` is made of (stored in the entry's manifest)."""
    return {
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "code": code_hash or training_code_hash(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def run_key(config: RunConfig, code_hash: str | None = None) -> str:
    """The cache key of ``config``: 16 hex digits of the SHA-256 of :func:`key_parts`."""
    return hashlib.sha256(json.dumps(key_parts(config, code_hash), sort_keys=True).encode()).hexdigest()[:16]


def entry_dir(config: RunConfig, cache_dir: str | Path, code_hash: str | None = None) -> Path:
    """Where the cached run of ``config`` lives (or will) under ``cache_dir``."""
    return Path(cache_dir) / f"{config.name}-{run_key(config, code_hash)}"


DERIVED = ("analyses", "progress.jsonl")
"""What readers may add to a cached run without changing it: per-checkpoint analyses, keyed by the
checkpoint's hash (:mod:`interp.checkpoint_analyses`), and the progress measures' file."""


def _file_hashes(run_dir: Path) -> dict[str, list]:
    files = {}
    for path in sorted(run_dir.rglob("*")):
        if path.relative_to(run_dir).parts[0] in DERIVED:
            continue
        if path.is_file() and path.name != LOCK_FILE:
            files[path.relative_to(run_dir).as_posix()] = [
                path.stat().st_size,
                hashlib.sha256(path.read_bytes()).hexdigest(),
            ]
    return files


def _manifest(entry: Path) -> Path:
    return entry.with_name(entry.name + ".json")


def _is_ready(entry: Path) -> bool:
    """Is ``entry`` complete; raises if its files changed since it was written."""
    manifest = _manifest(entry)
    if not (entry.is_dir() and manifest.is_file()):
        return False
    fix = f"delete {entry} and {manifest.name} to train it again"
    data = read_json(
        manifest, CheckpointError, what="cache manifest", expect=dict, invalid="corrupted cache manifest", hint=fix
    )
    expected = data.get("files")
    if not isinstance(expected, dict):
        raise CheckpointError(f'{manifest}: corrupted cache manifest (no "files" mapping); {fix}')
    found = _file_hashes(entry)
    if found != expected:
        changed = sorted(name for name in set(found) | set(expected) if found.get(name) != expected.get(name))
        raise CheckpointError(
            f"{entry / changed[0]}: the cached run changed after it was trained; delete {entry} and {manifest.name} to train it again"
        )
    return True


@contextlib.contextmanager
def _entry_lock(entry: Path, *, wait: bool) -> Iterator[bool]:
    """Hold the entry's ``flock`` for the block; yields False (without waiting) when another
    process holds it and ``wait`` is False."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(entry.with_name(entry.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the flock


def cached_train(config: RunConfig, cache_dir: str | Path, *, wait: bool = True) -> Path | None:
    """The run folder of ``config`` trained to its end, from ``cache_dir`` (trained there first if missing).

    With ``wait=False`` a run that another process is training now gives None at once instead
    of waiting for it. Training errors propagate and leave no entry behind.
    """
    from interp.train.start import train

    parts = key_parts(config)
    entry = entry_dir(config, cache_dir, parts["code"])
    if _is_ready(entry):
        return entry
    with _entry_lock(entry, wait=wait) as held:
        if not held:
            return None
        if _is_ready(entry):  # another process trained it while this one waited
            return entry
        for stale in [entry, *entry.parent.glob(f".{entry.name}.partial-*")]:  # left by a crashed trainer
            shutil.rmtree(stale, ignore_errors=True)
        partial = entry.with_name(f".{entry.name}.partial-{os.getpid()}")
        try:
            train(config, partial)
            (partial / LOCK_FILE).unlink(missing_ok=True)
            files = _file_hashes(partial)
            os.rename(partial, entry)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        atomic_write_json(_manifest(entry), {**parts, "files": files}, indent=1)
    return entry


__all__ = ["cached_train", "entry_dir", "run_key", "training_code_hash", "training_sources"]
