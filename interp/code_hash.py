"""The source of a set of ``interp`` (and ``circuits``) modules, found by reading their imports, and its hash.

A module's behaviour depends on its own source and on every ``interp`` module it imports,
directly or not. :func:`module_sources` follows the ``import`` statements (``from X import
name`` counts ``X.name`` when that is a module) and :func:`code_hash` hashes the files it
finds: the training cache keys runs on the trainer's (:mod:`interp.train.cache`), the
per-checkpoint analyses on theirs (:mod:`interp.checkpoint_analyses`).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Sequence
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
"""The ``interp`` package folder."""


PACKAGES = ("interp", "circuits")
"""The packages whose modules are followed: ``interp`` under ``root``, ``circuits`` beside it."""


def _module_file(module: str, root: Path) -> Path | None:
    """The source file of ``interp.a.b`` under ``root`` (the ``interp`` folder), or of ``circuits.a.b``
    in the folder beside it; None if there is none."""
    top, *parts = module.split(".")
    base = root.joinpath(*parts) if top == "interp" else root.parent.joinpath(top, *parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path, module: str) -> set[str]:
    """The modules of :data:`PACKAGES` that ``path`` (module ``module``) imports, submodules named in
    ``from X import name`` included, and every parent package of each."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    closed = set()
    for name in found:
        parts = name.split(".")
        if parts[0] in PACKAGES:
            closed.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return closed


def module_sources(entries: Sequence[str], root: Path = PACKAGE_ROOT) -> list[Path]:
    """Every source file under ``root`` that the modules ``entries`` are or import, directly or not, sorted."""
    seen: dict[str, Path] = {}
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        path = _module_file(module, root)
        if path is None:  # a name imported from a module, not a module
            continue
        seen[module] = path
        todo.extend(_imports(path, module) - seen.keys())
    return sorted(set(seen.values()))


def code_hash(entries: Sequence[str], root: Path = PACKAGE_ROOT) -> str:
    """SHA-256 over the paths (relative to ``root``; a ``circuits`` file's to the folder above) and bytes of
    :func:`module_sources`."""
    digest = hashlib.sha256()
    for path in module_sources(entries, root):
        name = path.relative_to(root if path.is_relative_to(root) else root.parent).as_posix()
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


__all__ = ["PACKAGE_ROOT", "code_hash", "module_sources"]
