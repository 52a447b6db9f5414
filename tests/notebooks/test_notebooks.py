"""The exploration notebooks run top to bottom on the grokked test runs and show what the paper found.

Each notebook in ``notebooks/`` is executed with nbclient in a fresh kernel (the venv's
ipykernel, one thread), pointed at the session's grokked runs through ``GROKSCOPE_RUN_DIR``,
``GROKSCOPE_COMPARISON_RUN_DIR`` or ``GROKSCOPE_MODULAR_RUN_DIR`` (:data:`RUN_ENV`; the runs of
tests/conftest.py), so nothing is trained here. The
executed copies go to a temporary folder; the committed notebooks hold no outputs. A copy
that ran every cell without an error is also saved (atomically) into ``docs/notebooks/``
(git-ignored), where the documentation site renders it (docs/notebooks.md).

Every notebook ends with a cell tagged ``findings`` that prints ``key: value`` lines; the
thresholds below are those of the scientific tests (tests/interp/test_grokked.py,
tests/circuits/test_grokked*.py): well below what a grokked model reaches, well above what
a model without the mechanism gives.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from interp.io import atomic_write_text

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
DOCS_NOTEBOOK_DIR = NOTEBOOK_DIR.parent / "docs" / "notebooks"  # executed copies the site renders (git-ignored)
NOTEBOOKS = {
    "grokking": "01_grokking_dynamics.ipynb",
    "lens": "02_bridge_entity_logit_lens.ipynb",
    "tracing": "03_causal_tracing_composition_circuit.ipynb",
    "comparison": "04_comparison_parallel_circuit.ipynb",
    "looped": "06_looped_ood.ipynb",
    "features": "05_features.ipynb",
    "fourier": "07_modular_addition_progress.ipynb",
    "depth": "08_depth_extrapolation.ipynb",
}
# which of the package's HTML renderers each notebook shows inline (a class or call in the output)
RENDERED = {
    "grokking": ('class="gs-chart"',),
    "lens": ('class="gs-heatmap"',),
    "tracing": ('class="gs-heatmap"', 'class="gs-chart"', 'class="gs-graph"', "CircuitsVis.render("),
    "comparison": ('class="gs-chart"', 'class="gs-graph"', "CircuitsVis.render("),
    "looped": ('class="gs-chart"', 'class="gs-heatmap"'),
    "features": ('class="gs-fd-card"', 'class="gs-fd-hist"', "<svg"),
    "fourier": ('class="gs-chart"', 'class="gs-heatmap"'),
    "depth": ('class="gs-chart"', 'class="gs-table"'),
}
CELL_TIMEOUT_S = 600
RUN_FIXTURE = {
    key: {"comparison": "grokked_comparison_run_dir", "fourier": "grokked_modular_run_dir"}.get(key, "grokked_run_dir")
    for key in NOTEBOOKS
}
"""The grokked run (a fixture of tests/conftest.py) each notebook reads."""
RUN_ENV = {
    key: {
        "comparison": "GROKSCOPE_COMPARISON_RUN_DIR",
        "fourier": "GROKSCOPE_MODULAR_RUN_DIR",
        "depth": "GROKSCOPE_DEPTH_RUN_DIR",
    }.get(key, "GROKSCOPE_RUN_DIR")
    for key in NOTEBOOKS
}
"""The environment variable each notebook reads its run from."""


def notebook_marks(key: str) -> list[pytest.MarkDecorator]:
    """Marks of a test of notebook ``key``: it uses that notebook's grokked run (tests/conftest.py), and
    every test of one notebook runs on the same xdist worker (``--dist loadgroup``), so each notebook
    executes once."""
    return [pytest.mark.grokked_run(RUN_FIXTURE[key]), pytest.mark.xdist_group(f"notebook-{key}")]


def on_notebook(key: str):
    """Decorate a test that reads notebook ``key`` with :func:`notebook_marks`."""

    def decorate(fn):
        for mark in notebook_marks(key):
            fn = mark(fn)
        return fn

    return decorate


@pytest.fixture(scope="module")
def executed(tmp_path_factory, request):
    """``executed(key)``: the notebook run top to bottom (cached per module), outputs in a temporary folder
    (and in ``docs/notebooks/`` when every cell ran without an error)."""
    cache: dict[str, nbformat.NotebookNode] = {}

    def run(key: str) -> nbformat.NotebookNode:
        if key not in cache:
            run_dir = request.getfixturevalue(RUN_FIXTURE[key])
            work = tmp_path_factory.mktemp(f"notebook-{key}")
            env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            env[RUN_ENV[key]] = str(run_dir)
            nb = nbformat.read(NOTEBOOK_DIR / NOTEBOOKS[key], as_version=4)
            client = NotebookClient(
                nb,
                timeout=CELL_TIMEOUT_S,
                kernel_name="python3",
                allow_errors=True,
                resources={"metadata": {"path": str(work)}},
            )
            client.execute(env=env)
            nbformat.write(nb, work / NOTEBOOKS[key])  # for a look after a failure; never into notebooks/
            if not _errors(nb) and all(c.execution_count is not None for c in nb.cells if c.cell_type == "code"):
                atomic_write_text(DOCS_NOTEBOOK_DIR / NOTEBOOKS[key], nbformat.writes(nb))
            cache[key] = nb
        return cache[key]

    return run


def _outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    return [f"{o['ename']}: {o['evalue']}" for o in _outputs(nb) if o.get("output_type") == "error"]


def findings(nb: nbformat.NotebookNode) -> dict[str, float]:
    """The ``key: value`` lines printed by the notebook's cell tagged ``findings``."""
    cells = [c for c in nb.cells if "findings" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, "a notebook needs exactly one cell tagged 'findings'"
    text = "".join(out.get("text", "") for out in cells[0].outputs if out.get("output_type") == "stream")
    found = {}
    for line in text.splitlines():
        key, sep, value = line.rpartition(": ")
        if sep and re.fullmatch(r"-?\d+(\.\d+)?|nan|None", value):
            found[key] = float("nan") if value in ("nan", "None") else float(value)
    assert found, f"the findings cell printed no 'key: value' lines:\n{text}"
    return found


# ---------------------------------------------------------------------------------- files
ALL_NOTEBOOKS = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))


def test_the_exploration_notebooks_are_there():
    assert set(NOTEBOOKS.values()) <= set(ALL_NOTEBOOKS), ALL_NOTEBOOKS


@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_committed_notebooks_are_output_stripped(name):
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: cell {cell.get('id')} has outputs"
    assert "widgets" not in nb.metadata, name
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("key", sorted(NOTEBOOKS))
def test_notebooks_read_their_run_from_the_environment(key):
    cells = nbformat.read(NOTEBOOK_DIR / NOTEBOOKS[key], as_version=4).cells
    source = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert f'os.environ.get("{RUN_ENV[key]}")' in source
    assert "torch.set_num_threads(" in source
    assert "import interp" in source or "from interp" in source


# ------------------------------------------------------------------------------ execution
@pytest.mark.parametrize("key", [pytest.param(key, marks=notebook_marks(key)) for key in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_with_plots_and_renderers(executed, key):
    nb = executed(key)
    outputs = _outputs(nb)
    errors = _errors(nb)
    assert not errors, errors
    assert all(c.execution_count is not None for c in nb.cells if c.cell_type == "code")  # every cell ran
    assert any("image/png" in o.get("data", {}) for o in outputs), "no matplotlib figure"
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    for marker in RENDERED[key]:
        assert marker in html, f"{key}: the {marker} renderer is not shown inline"
    if "CircuitsVis.render(" in html:  # circuitsvis runs from its bundled script, never a CDN
        assert "var CircuitsVis" in html
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)\s*=\s*["']?https?:""", html, re.I)


@on_notebook("grokking")
def test_grokking_dynamics_findings(executed):
    f = findings(executed("grokking"))
    # memorization comes first; held-out ID composition groks, OOD composition does not follow
    assert f["memorization step"] <= f["grokking step"], f
    assert f["final train accuracy"] >= 0.99 and f["final test_id accuracy"] >= 0.99, f
    assert f["final test_ood accuracy"] < 0.5, f
    # Figure 4b-c: the bridge state at r1 becomes causal and decodable as the model groks
    assert f["r1 causal strength at last step"] >= 0.8 and f["r1 bridge MRR at last step"] >= 0.8, f
    assert f["r1 causal strength at last step"] - f["r1 causal strength at first step"] >= 0.3, f
    assert f["r1 bridge MRR at last step"] - f["r1 bridge MRR at first step"] >= 0.3, f


@on_notebook("lens")
def test_bridge_entity_logit_lens_findings(executed):
    f = findings(executed("lens"))
    n = int(f["layers"])
    assert 1 <= f["best middle state for the bridge at r1"] <= n - 1
    assert f["bridge top-1 at r1 in some middle state (train_inferred)"] > 0.5, f
    assert f["bridge top-1 at r1, best middle state (train_inferred)"] >= 0.5, f
    assert f["bridge top-1 at r1, best middle state (test_id)"] >= 0.5, f
    # the bridge is read at r1, not at h nor at r2
    assert f["bridge top-1 at h, max over middle states"] < 0.3, f
    assert f["bridge top-1 at r2, max over middle states"] < 0.3, f
    # ID second hops work; OOD ones fail although the OOD first hop can be read
    assert f["answer top-1 at r2, output (test_id)"] >= 0.9, f
    assert f["answer top-1 at r2, output (test_ood)"] < 0.5, f


@on_notebook("tracing")
def test_causal_tracing_and_circuit_findings(executed):
    f = findings(executed("tracing"))
    n = int(f["layers"])
    # tracing: swapping r1 (r2) changes the answer through r1's (r2's) middle states
    assert f["r1 swap: change rate at r1, max over middle states"] >= 0.8, f
    assert f["r2 swap: change rate at r2, max over middle states"] >= 0.8, f
    # noise: noising h and r1 destroys the answer; restoring the whole output state gives it back exactly
    assert f["noise: noised P(answer)"] < 0.5 * f["noise: clean P(answer)"], f
    restored = f["noise: P(answer) with the output state at r2 restored"]
    assert restored == pytest.approx(f["noise: clean P(answer)"], abs=2e-3), f
    assert f["noise: best restored P(answer) at r1"] >= 0.5 * f["noise: clean P(answer)"], f
    # interchange: pasting S[l, r1] from another bridge makes the model answer r2 of that bridge
    assert f["interchange prompts"] >= 100
    assert f["interchange baseline"] <= 0.05, f
    assert f["interchange success, best state"] >= 0.85, f
    assert f["interchange success, state 0"] <= 0.2, f
    # the circuit: small, faithful, complete, with the paper's shape
    assert f["circuit edges"] <= 0.3 * f["model edges"], f
    for ablation in ("mean", "resample"):
        assert f[f"circuit faithfulness ({ablation})"] >= (0.85 if ablation == "mean" else 0.8), f
        assert f[f"circuit completeness ({ablation})"] >= 0.9, f
    assert f["hand-over layer"] >= n // 2, f
    assert f["mover share at or above the middle layer"] >= 0.9, f
    assert f["first hop done by the hand-over"] >= 0.9, f
    assert f["answer top-1 at r2, hand-over state"] <= 0.5 and f["answer top-1 at r2, output"] >= 0.9, f


@on_notebook("comparison")
def test_comparison_parallel_circuit_findings(executed):
    f = findings(executed("comparison"))
    n = int(f["layers"])
    # comparison generalizes in distribution, and out of distribution above the majority outcome
    assert f["test_id accuracy"] >= 0.99, f
    assert f["test_ood accuracy"] > f["test_ood majority-outcome rate"] + 0.1, f
    # one lower-layer MLP retrieves v1 at e1 and v2 at e2 in parallel
    assert f["retrieval layer at e1"] == f["retrieval layer at e2"] < n // 2, f
    assert f["e1 swap: MLP importance at e1, retrieval layer"] >= 0.25, f
    assert f["e2 swap: MLP importance at e2, retrieval layer"] >= 0.5, f
    assert f["e2 swap: max importance before e2"] == 0.0, f  # causality: nothing before e2 sees it
    # one MLP above the retrieval, at e2, needs either value: the comparison
    assert f["comparison layer at e2"] > f["retrieval layer at e2"], f
    # (measured 0.50 / 0.54 and 0.30 / 0.28 on two grokked runs; the other MLPs there <= 0.06)
    for swap in ("e1", "e2"):
        importance = f[f"{swap} swap: MLP importance at e2, comparison layer"]
        assert (
            importance >= 0.2
            and importance >= 2 * f["other MLPs above the retrieval at e2: max importance (either swap)"]
        ), f
    # v1 is decided by the e1 token and has reached e2 by the middle layers
    assert f["v1 interchange baseline"] <= 0.05 and f["v1 interchange at e1, state 0"] >= 0.9, f
    assert f["v1 at e2 interchange, state 0"] <= 0.05, f
    assert f["v1 at e2 interchange, middle state"] >= 0.3, f
    assert f["v1 at e2 interchange, before the last block"] >= 0.9, f
    assert f["v1 at e2 interchange, output"] >= 0.9, f
    # the circuit is faithful and complete, and works at both entity positions in the retrieval layer
    assert f["circuit faithfulness (mean)"] >= 0.85 and f["circuit faithfulness (resample)"] >= 0.8, f
    assert f["circuit completeness (mean)"] >= 0.9 and f["circuit completeness (resample)"] >= 0.9, f
    assert f["circuit writes at e1 in the retrieval layer"] == 1, f
    assert f["circuit writes at e2 in the retrieval layer"] == 1, f


@on_notebook("looped")
def test_looped_ood_findings(executed):
    f = findings(executed("looped"))
    # every iteration of the looped view is its own applied block; the last lens is the model's output
    assert f["applied blocks at T=3"] == 3 * f["stack size"], f
    assert f["lens vs logits gap"] <= 1e-4, f
    # the open question: ID composition, no OOD composition
    assert f["test_id accuracy T=1"] >= 0.99 and f["test_ood accuracy T=1"] < 0.5, f
    # loops added at inference to a model trained once do not create OOD composition
    assert f["test_ood accuracy T=2"] < 0.5 and f["test_ood accuracy T=3"] < 0.5, f
    # the first iteration reads the bridge at r1 and writes the answer at r2, as the plain model does
    assert f["bridge top-1 at r1, best state of iteration 1"] >= 0.5, f
    assert f["answer top-1 at r2, end of iteration 1"] >= 0.9, f


@on_notebook("features")
def test_features_findings(executed):
    f = findings(executed("features"))
    # the dictionary sits where the bridge is used (whole-state interchange), and replaces that state well
    assert 1 <= f["dictionary state (blocks applied)"] <= f["layers"] - 1
    assert f["whole-state interchange at the dictionary state"] >= 0.8, f
    assert f["dictionary accuracy recovered"] >= 0.9 and f["dictionary FVU"] <= 0.2, f
    # bridge features: many entities get a precise feature, and about half of those write their own entity
    # (measured 33 features for 28 of 99 entities, 0.46 writing their own; chance of the latter ~1/120)
    assert f["bridge features (precision >= 0.8)"] >= 10 and f["distinct bridge entities with a feature"] >= 10, f
    assert f["share of bridge features promoting their own bridge"] >= 0.2, f
    # each entity has a feature that separates it (measured AUROC 0.98); k-sparse probes need ~one feature per
    # entity on the dictionary, a few raw dimensions (measured 0.14 / 0.50 at k=16 / 64; raw 0.86 at 16)
    assert f["best single feature per bridge entity, mean AUROC"] >= 0.9, f
    assert f["bridge probe held-out accuracy, raw, k=16"] >= 0.5, f
    assert f["bridge probe held-out accuracy, dictionary, k=64"] >= 5 * f["bridge probe chance"], f
    # the attribution graph adds up; steering by interchange works, and no edit never gives the new answer
    assert f["attribution graph largest residual"] <= 1e-3, f
    assert f["steering success, interchange"] >= 0.8 and f["steering success, no edit"] <= 0.05, f
    assert f["steering success, feature"] >= f["steering success, no edit"], f


@on_notebook("fourier")
def test_modular_addition_progress_findings(executed):
    """Nanda et al. 2023 on the grokked modular-addition run: the Fourier circuit and its progress measures."""
    f = findings(executed("fourier"))
    assert 1 <= f["key frequencies"] <= 8, f
    assert f["single-frequency neurons"] >= 0.3 and f["embedding power in key frequencies"] >= 0.5, f
    assert f["final test accuracy"] >= 0.99, f
    # the key-frequency logits alone do better than the model; without them the training pairs are lost
    assert f["final restricted loss"] < f["final test loss"], f
    assert f["final excluded loss"] > 1.0 > 10 * f["final train loss"], f
    assert f["gini W_E last"] > f["gini W_E first"] + 0.1 and f["weight norm last"] < f["weight norm first"], f
    assert f["memorisation ends"] <= f["clean-up starts"] < f["clean-up ends"], f
    # a dictionary's features write mostly within one frequency cluster of neurons, but fire on few pairs:
    # their activations are not the single-frequency waves the neurons are
    assert f["live dictionary features"] >= 10, f
    assert f["feature decoder cluster purity (median)"] >= 0.5, f
    assert f["single-frequency features"] < f["single-frequency neurons"], f


@on_notebook("depth")
def test_depth_findings(executed):
    """The depth notebook on the tests' composition run (2-hop, one pass; RESULTS.md has the looped k-hop run):
    held-out chains of the trained depth are answered, and the lens finds the last hop where the answer is."""
    f = findings(executed("depth"))
    deepest, loops = f["deepest trained depth"], f["loops built"]
    assert f["held-out accuracy at the deepest trained depth, trained loops"] >= 0.9, f
    # the lens at the last relation after the last iteration is the model's answer, so it is reached as often
    assert f["last hop reached at the deepest trained depth"] >= 0.9, f
    assert 1 <= f["last hop settled iteration at the deepest trained depth"] <= max(deepest, loops), f
    assert 2 <= f["mean halting iteration at the deepest trained depth"] <= 16, f
