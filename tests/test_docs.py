"""The documentation site builds with ``mkdocs build --strict`` and shows what the code and the README hold.

One build per module, offline, into a temporary folder: a broken link, a missing anchor or an
API reference that does not resolve fails it. The notebook pages are built from a folder of
executed copies made here (``GROKSCOPE_DOCS_NOTEBOOKS``): one copy with outputs, one whose cells
differ from the committed notebook (stale), none for the others.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import typer

from experiments.cli import app

ROOT = Path(__file__).resolve().parents[1]
MARKER = "executed-copy-output-7f3a"  # printed by the synthetic executed copy
EXECUTED, STALE = "01_grokking_dynamics.ipynb", "02_bridge_entity_logit_lens.ipynb"


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _text(path: Path) -> str:
    """A built page's text: tags dropped, entities decoded (code blocks split tokens into spans)."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("docs")
    executed = tmp / "notebooks"
    executed.mkdir()
    nb = nbformat.read(ROOT / "notebooks" / EXECUTED, as_version=4)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = i + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{MARKER} {i}\n")]
    nbformat.write(nb, executed / EXECUTED)
    stale = nbformat.read(ROOT / "notebooks" / STALE, as_version=4)
    stale.cells.append(nbformat.v4.new_code_cell(f"print('{MARKER}')"))
    nbformat.write(stale, executed / STALE)

    env = {**os.environ, "GROKSCOPE_DOCS_NOTEBOOKS": str(executed), "NO_MKDOCS_2_WARNING": "1", "OMP_NUM_THREADS": "1"}
    out = tmp / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_getting_started_quotes_the_readme_set_up_commands(site):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Set-up: two commands\n(.*?)^## ", readme, re.M | re.S)
    assert section, "README.md has no '## Set-up: two commands' section"
    commands = [
        line
        for block in re.findall(r"```bash\n(.*?)```", section[1], re.S)
        for line in block.splitlines()
        if line and not line.startswith("#")
    ]
    assert len(commands) == 2, commands
    page = _text(site / "getting-started" / "index.html")
    for command in commands:
        assert command in page, command


def test_cli_page_lists_every_command_with_its_options(site):
    page = (site / "cli" / "index.html").read_text(encoding="utf-8")
    root = typer.main.get_command(app)

    def paths(cmd, ctx, prefix):
        yield prefix
        for name in cmd.list_commands(ctx) if hasattr(cmd, "list_commands") else []:
            sub = cmd.get_command(ctx, name)
            yield from paths(sub, sub.context_class(sub, info_name=name, parent=ctx), [*prefix, name])

    found = list(paths(root, root.context_class(root, info_name="grokscope"), ["grokscope"]))
    assert ["grokscope", "features", "das"] in found and len(found) > 10
    for path in found:
        assert f'id="{"-".join(path)}"' in page, path
    for option in ("--max-steps", "--expansion", "--address"):
        assert f"<code>{option}</code>" in page, option


def test_api_reference_has_a_page_per_module_rendered_from_docstrings(site):
    hooks = _hooks()
    modules = [m for p in hooks.PACKAGES for m in hooks.modules(p)]
    assert {"interp.lens", "interp.data.tasks.base", "circuits.views.explorer.page", "experiments.runner"} <= set(
        modules
    )
    assert not any(m.startswith("experiments.cli") for m in modules)  # on the CLI page instead
    for module in modules:
        assert (site / "reference" / module / "index.html").is_file(), module
    lens = (site / "reference" / "interp.lens" / "index.html").read_text(encoding="utf-8")
    assert 'id="interp.lens.bridge_entity_lens"' in lens
    assert "Logit lens: read a token off the residual stream" in lens  # the module docstring
    assert ":func:" not in _text(site / "reference" / "circuits" / "index.html")


def test_root_documents_are_included_not_copied(site):
    for name, page in (("RESULTS.md", "results"), ("BENCHMARKS.md", "benchmarks"), ("ARCHITECTURE.md", "architecture")):
        title = (ROOT / name).read_text(encoding="utf-8").splitlines()[0].removeprefix("# ")
        assert "<h1" in (site / page / "index.html").read_text(encoding="utf-8")
        assert title in _text(site / page / "index.html"), name
        assert (ROOT / "docs" / f"{page}.md").read_text(encoding="utf-8").strip() == f"<!-- include {name} -->"


def test_notebook_pages_render_executed_copies_and_note_the_others(site):
    executed = (site / "notebooks" / EXECUTED.removesuffix(".ipynb") / "index.html").read_text(encoding="utf-8")
    assert f"{MARKER} 0" in executed and "Outputs not rendered" not in executed
    for name in sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")):
        if name != EXECUTED.removesuffix(".ipynb"):
            page = (site / "notebooks" / name / "index.html").read_text(encoding="utf-8")
            assert "Outputs not rendered" in page and MARKER not in page, name  # none, or stale (STALE)


def test_included_links_are_rewritten_for_the_site_and_broken_ones_kept_for_strict():
    rewrite = _hooks().rewrite_links
    text = (
        "[b](BENCHMARKS.md#time-to-grok) ![x](docs/img/explorer-model.png) [s](benchmarks/time_to_grok.py) "
        "[gone](no/such/file.md) [w](https://example.org) [a](#here)"
    )
    assert rewrite(text, "results.md") == (
        "[b](benchmarks.md#time-to-grok) ![x](img/explorer-model.png) s (`benchmarks/time_to_grok.py`) "
        "[gone](no/such/file.md) [w](https://example.org) [a](#here)"
    )
    assert rewrite("[r](RESULTS.md)", "sub/page.md") == "[r](../results.md)"
    assert rewrite("[s](benchmarks/time_to_grok.py)", "x.md", "https://h/o/r") == (
        "[s](https://h/o/r/blob/main/benchmarks/time_to_grok.py)"
    )
