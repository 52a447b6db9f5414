"""Fuzzing run folders: every reader returns what the run wrote or one line naming the file at fault.

A real run (two checkpoints) and a second run of another width are damaged the ways
folders get damaged: files truncated, bytes inserted (non-UTF-8 too), lines replaced,
files removed, ``latest`` pointing anywhere, safetensors and ``state.json`` swapped
between checkpoints and between runs, ``state.json`` / ``config.json`` fields set to any
JSON value. Then ``stored_config``, ``read_metrics``, ``latest_checkpoint`` and
``load_checkpoint`` each return a sound result (a config that loads back, metric rows, a
complete checkpoint, a model that runs) or raise a GrokscopeError whose one line starts
with a path inside the run folder. They never write.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st

from interp.runs import LoadedRun, latest_checkpoint, load_checkpoint, read_metrics, stored_config
from interp.train import RunConfig, train
from tests.fuzz.conftest import check_error, damage_bytes, tree_digest
from tests.fuzz.test_fuzz_configs import VALUES
from tests.tiny import quick_config

STEPS = ("step_0000010", "step_0000020")
FILES = [
    "config.json",
    "metrics.jsonl",
    "latest",
    "summary.json",
    "data/vocab.json",
    "data/train.json",
    "data/config.json",
] + [f"checkpoints/{s}/{f}" for s in STEPS for f in ("state.json", "model.safetensors", "trainer.safetensors")]
STATE_KEYS = ["step", "config", "sha256", "d_vocab", "n_ctx", "elapsed", "metrics", "format_version", "grokked_step"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    cfg = quick_config("train.max_steps=20", "train.tensorboard=false")
    train(cfg, root / "a")
    train(quick_config("train.max_steps=10", "train.tensorboard=false", "model.d_model=16"), root / "b")
    return {"a": root / "a", "b": root / "b"}


@st.composite
def damage(draw):
    kind = draw(st.sampled_from(["truncate", "bytes", "line", "remove", "swap_step", "swap_run", "latest", "field"]))
    return (
        kind,
        draw(st.sampled_from(FILES)),
        draw(st.floats(0, 1)),
        draw(st.binary(min_size=1, max_size=8)),
        draw(st.text(max_size=20)),
        draw(st.sampled_from(STATE_KEYS)),
        draw(VALUES),
    )


def apply(run: Path, other: Path, hit) -> None:
    kind, name, where, blob, text, key, value = hit
    path = run / name
    if kind == "latest":
        (run / "latest").write_bytes(draw_pointer(text, blob, where))
        return
    if not path.is_file():
        return
    if damage_bytes(path, kind, where, blob, text):
        return
    if kind == "swap_step" and "checkpoints/" in name:
        a, b = (run / name.replace(STEPS[0], s).replace(STEPS[1], s) for s in STEPS)
        if a.is_file() and b.is_file():
            a_bytes = a.read_bytes()
            a.write_bytes(b.read_bytes())
            b.write_bytes(a_bytes)
    elif kind == "swap_run" and (other / name).is_file():
        shutil.copy(other / name, path)
    elif kind == "field" and name.endswith(("state.json", "config.json")):
        try:
            obj = json.loads(path.read_bytes())
        except ValueError:
            return
        if isinstance(obj, dict):
            obj[key if name.endswith("state.json") else draw_section(key)] = value
            path.write_text(json.dumps(obj), encoding="utf-8")


def draw_pointer(text: str, blob: bytes, where: float) -> bytes:
    choices = [STEPS[0], STEPS[1], "step_9999999", "../b/checkpoints/" + STEPS[1], "/", text, "", STEPS[0] + "\n\n"]
    pick = choices[int(where * len(choices)) % len(choices)]
    return pick.encode("utf-8") + (blob if where > 0.9 else b"")


def draw_section(key: str) -> str:
    return {"step": "train", "config": "model", "sha256": "data", "d_vocab": "name", "n_ctx": "data_dir"}.get(key, key)


def refuse_or_return(run: Path, read):
    try:
        return read()
    except Exception as err:  # noqa: BLE001 - the property is about which exceptions escape
        msg = check_error(err, run)
        event(f"refused: {msg[len(str(run)) + 1 :].split(':')[0].split(' ')[0]}")
        return None


@given(st.sampled_from(["a", "b"]), st.lists(damage(), min_size=1, max_size=3))
def test_damaged_run_folders_read_or_fail_in_one_line(runs, which, hits):
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(runs[which], run)
        for hit in hits:
            apply(run, runs["b" if which == "a" else "a"], hit)
        before = tree_digest(run)

        cfg = refuse_or_return(run, lambda: stored_config(run))
        if cfg is not None:
            assert isinstance(cfg, RunConfig) and RunConfig.from_dict(cfg.to_dict()) == cfg
        rows = refuse_or_return(run, lambda: read_metrics(run))
        if rows is not None:
            assert all(isinstance(r, dict) and isinstance(r["step"], int) for r in rows)
        ckpt = refuse_or_return(run, lambda: latest_checkpoint(run))
        if ckpt is not None:
            assert ckpt.parent == run / "checkpoints" and ckpt.name in STEPS and (ckpt / "state.json").is_file()
        loaded = refuse_or_return(run, lambda: load_checkpoint(run, device="cpu"))
        if loaded is not None:
            event("loaded")
            assert isinstance(loaded, LoadedRun) and loaded.checkpoint.parent == run / "checkpoints"
            batch = loaded.dataset.batch("test_id")[:2]
            with torch.no_grad():
                logits = loaded.model(batch.tokens).logits
            assert logits.shape == (*batch.tokens.shape, len(loaded.dataset.vocab)) and torch.isfinite(logits).all()
        assert tree_digest(run) == before, "a reader changed the run folder"
