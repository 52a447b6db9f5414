"""MkDocs hooks: the pages of the site that come from the code and from the repository's own files.

- ``<!-- include FILE.md -->`` on a line of its own in a page is replaced by that file of the repository
  root, ``<!-- include FILE.md section="TITLE" -->`` by its ``## TITLE`` section; links in the included
  text are rewritten for the site (root Markdown files to their pages, ``docs/...`` into the site, other
  repository files to plain text); a link to nothing is left for ``mkdocs build --strict`` to report.
- ``reference/``: one mkdocstrings page per module of ``interp``, ``circuits`` and ``experiments`` (the
  command-line modules are on ``cli.md``), listed in the navigation.
- ``cli.md``: every ``grokscope`` command's usage, arguments and options, read from the typer app.
- ``notebooks/NAME.ipynb``: the executed copy in ``docs/notebooks/`` (git-ignored; the notebook tests
  write it), or, where there is none or it is older than the notebook, the committed notebook, which
  holds no outputs, under a note that says so. Nothing is executed at build time.
"""

from __future__ import annotations

import ast
import json
import os
import posixpath
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOKS = ROOT / "notebooks"
# executed copies (git-ignored); GROKSCOPE_DOCS_NOTEBOOKS names another folder called notebooks (the tests do)
EXECUTED = Path(os.environ.get("GROKSCOPE_DOCS_NOTEBOOKS", DOCS / "notebooks")).resolve()
PACKAGES = ("interp", "circuits", "experiments")
CLI_MODULES = ("experiments.cli", "experiments.cli_features", "experiments.__main__")
ROOT_PAGES = {
    "README.md": "index.md",
    "ARCHITECTURE.md": "architecture.md",
    "RESULTS.md": "results.md",
    "BENCHMARKS.md": "benchmarks.md",
}

INCLUDE = re.compile(r'^<!-- include (?P<file>[\w.-]+\.md)(?: section="(?P<section>[^"]+)")? -->$', re.M)
LINK = re.compile(r"(?P<bang>!?)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")
ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|obj|exc):(?=<code>)")


# ------------------------------------------------------------------------------- includes
def root_markdown(name: str, section: str | None = None) -> str:
    """The text of the root file ``name``, or of its ``## section`` (heading excluded)."""
    path = ROOT / name
    if not path.is_file():
        raise PluginError(f"include: {name} is not a file of the repository root")
    text = path.read_text(encoding="utf-8")
    if section is None:
        return text
    body, inside, fenced = [], False, False
    for line in text.splitlines(keepends=True):
        fenced ^= line.startswith("```")
        heading = not fenced and re.match(r"#{1,2} ", line)
        if heading and inside:
            break
        if inside:
            body.append(line)
        inside = inside or (heading and line.rstrip() == f"## {section}")
    if not inside:
        raise PluginError(f'include: {name} has no section "## {section}"')
    return "".join(body)


def rewrite_links(text: str, page_uri: str, repo_url: str | None = None) -> str:
    """Links of a root Markdown file, made to work from the page ``page_uri`` of the site."""
    base = posixpath.dirname(page_uri) or "."

    def fix(m: re.Match) -> str:
        target = m["target"]
        if re.match(r"[a-zA-Z][\w+.-]*:|#", target):  # a URL or an anchor of the same page
            return m[0]
        path, sep, anchor = target.partition("#")
        if path in ROOT_PAGES:
            dest = ROOT_PAGES[path]
        elif path.startswith("docs/") and (ROOT / path).exists():
            dest = path.removeprefix("docs/")
        elif not m["bang"] and (ROOT / path).exists():  # a repository file that is not in the site
            if repo_url:
                return f"[{m['text']}]({repo_url.rstrip('/')}/blob/main/{target})"
            return f"`{path}`" if m["text"] in (path, f"`{path}`") else f"{m['text']} (`{path}`)"
        else:
            return m[0]  # not in the repository: --strict reports the broken link
        return f"{m['bang']}[{m['text']}]({posixpath.relpath(dest, base)}{sep}{anchor})"

    return LINK.sub(fix, text)


# ---------------------------------------------------------------------------- reference
def modules(package: str) -> list[str]:
    """The documented modules of ``package``: every module not private, the command line excepted."""
    names = []
    for path in (ROOT / package).rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        elif parts[-1].startswith("_"):
            continue
        name = ".".join(parts)
        if name not in CLI_MODULES:
            names.append(name)
    return sorted(names, key=lambda n: n.split("."))


def _module_path(name: str) -> Path:
    path = ROOT.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _summary(name: str) -> str:
    doc = ast.get_docstring(ast.parse(_module_path(name).read_text(encoding="utf-8"))) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def reference_page(name: str) -> str:
    """``::: name``; a package shows only what it defines itself (its re-exports have their own pages)."""
    page = f"::: {name}\n"  # the module's heading is the page's title (heading_level 1)
    path = _module_path(name)
    if path.name == "__init__.py":
        tree = ast.parse(path.read_text(encoding="utf-8"))
        own = [
            n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")
        ]
        page += "    options:\n" + (f"      members: {json.dumps(own)}\n" if own else "      members: false\n")
    return page


def reference_index() -> str:
    """The reference's front page: each module with the first paragraph of its docstring."""
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings of the three packages, one page per module. "
        "Tensor shapes use the dimension names listed in [`interp`](interp.md).",
        "",
    ]
    for package in PACKAGES:
        lines += [f"## `{package}`", "", "| module | what it holds |", "|---|---|"]
        lines += [f"| [`{m}`]({m}.md) | {_summary(m).replace('|', '&#124;')} |" for m in modules(package)]
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- CLI
def cli_markdown() -> str:
    """Every command of the ``grokscope`` typer app: its help, usage, arguments and options."""
    import typer  # typer 0.29 carries its own click: the code below asks the commands, not click

    from experiments.cli import app

    def cell(text: object) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    def section(cmd, ctx, depth: int) -> list[str]:
        path = ctx.command_path
        out = [
            f"{'#' * depth} `{path}`",
            "",
            (cmd.help or "").strip(),
            "",
            f"```text\n{path} {' '.join(cmd.collect_usage_pieces(ctx))}\n```",
            "",
        ]
        params = [p for p in cmd.get_params(ctx) if p.name != "help"]
        if params:
            out += ["| argument / option | type | default | description |", "|---|---|---|---|"]
            for p in params:
                names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
                if p.param_type_name == "argument":
                    names = f"`{p.name.upper()}`"
                default = "required" if p.required else ("" if p.default in (None, (), []) else f"`{p.default}`")
                kind = "flag" if getattr(p, "is_flag", False) else p.bare_type()
                out.append(f"| {names} | {cell(kind)} | {cell(default)} | {cell(p.help or '')} |")
            out.append("")
        for name in cmd.list_commands(ctx) if hasattr(cmd, "list_commands") else []:
            sub = cmd.get_command(ctx, name)
            out += section(sub, sub.context_class(sub, info_name=name, parent=ctx), depth + 1)
        return out

    root = typer.main.get_command(app)
    lines = [
        "# Command line",
        "",
        "Generated from the typer app (`experiments/cli.py`, `experiments/cli_features.py`) "
        "when the site is built. Bad input prints one line (`error: ...`) and exits with code 2.",
        "",
    ]
    return "\n".join(lines + section(root, root.context_class(root, info_name="grokscope"), 2))


# ---------------------------------------------------------------------------- notebooks
def _sources(path: Path) -> list[tuple[str, str]]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [(c["cell_type"], "".join(c["source"])) for c in cells]


def notebook_source(notebook: Path) -> Path:
    """The file the page of ``notebook`` is rendered from: its executed copy if that runs the same cells."""
    executed = EXECUTED / notebook.name
    if executed.is_file() and _sources(executed) == _sources(notebook):
        return executed
    return notebook


# -------------------------------------------------------------------------------- hooks
def on_config(config):
    """List the generated pages in the navigation, under the entries that name their index."""
    for i, item in enumerate(config["nav"]):
        ((title, target),) = item.items()
        if target == "reference/index.md":
            children = [{p: [{m: f"reference/{m}.md"} for m in modules(p)]} for p in PACKAGES]
            config["nav"][i] = {title: [{"Overview": target}, *children]}
        elif target == "notebooks.md":
            children = [{nb.stem: f"notebooks/{nb.name}"} for nb in sorted(NOTEBOOKS.glob("*.ipynb"))]
            config["nav"][i] = {title: [{"Overview": target}, *children]}
    return config


@event_priority(50)  # before mkdocs-jupyter's on_files, which turns the notebooks into pages
def on_files(files: Files, config) -> Files:
    """Add the reference pages, the CLI page, and a page per notebook."""
    if EXECUTED.name != "notebooks":
        raise PluginError(f"GROKSCOPE_DOCS_NOTEBOOKS must name a folder called notebooks; got {EXECUTED}")
    for name in [m for p in PACKAGES for m in modules(p)]:
        files.append(File.generated(config, f"reference/{name}.md", content=reference_page(name)))
    files.append(File.generated(config, "reference/index.md", content=reference_index()))
    files.append(File.generated(config, "cli.md", content=cli_markdown()))
    for file in [f for f in files if f.src_uri.startswith("notebooks/")]:
        files.remove(file)  # executed copies: added below when they match a notebook
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        src = notebook_source(notebook)  # .../notebooks/NAME.ipynb, in the repository or in docs/
        # a plain File (mkdocs-jupyter cannot read generated ones), its src_dir where the source lies
        files.append(
            File(
                f"notebooks/{notebook.name}",
                src_dir=str(src.parents[1]),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace each ``<!-- include ... -->`` line by the root file (or section) it names."""
    return INCLUDE.sub(
        lambda m: rewrite_links(root_markdown(m["file"], m["section"]), page.file.src_uri, config.get("repo_url")),
        markdown,
    )


def on_page_content(html: str, page, config, files) -> str:
    """Reference pages: drop Sphinx roles (``:func:`x``` shows as ``x``). Unexecuted notebooks: a note."""
    if page.file.src_uri.startswith("reference/"):
        return ROLE.sub("", html)
    if page.file.abs_src_path and Path(page.file.abs_src_path).parent == NOTEBOOKS:
        note = (
            '<div class="admonition note"><p class="admonition-title">Outputs not rendered</p><p>This page '
            "shows the notebook as committed, without outputs: no executed copy of it is in "
            "<code>docs/notebooks/</code>, or that copy runs other cells. "
            '<a href="../../notebooks/">Notebooks</a> says how to render them with their outputs.</p></div>'
        )
        return note + html
    return html
