"""The explorer section: a static skeleton, the JSON data block, and the inlined CSS and scripts.

The scripts and the stylesheet are package files next to this module (``model.js``: the forward
pass; ``plots.js``: SVG drawing; ``ui.js``: the wiring; ``explorer.css``). The data block is JSON
with ``<``, ``>`` and ``&`` escaped, inside a ``<script type="application/json">`` the page
parses; nothing in it can close the element, and the page inserts every token name as text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import torch

from circuits.space import CircuitError
from circuits.views.explorer.data import explorer_data
from circuits.views.explorer.timeline import Snapshot, checkpoint_snapshots, circuit_sizes
from circuits.views.explorer.weights import check_exportable
from circuits.views.figures import Figure, js_json
from interp.data import KGDataset
from interp.models import CausalLM

SCRIPTS = ("model.js", "plots.js", "ui.js")

SKELETON = """<div class="gsx" id="gsx-root">
<div class="gsx-timeline">
<div class="gsx-bar"><label>checkpoint <input type="range" id="gsx-ckpt" min="0" max="0" step="1" value="0"></label>
<span id="gsx-step"></span></div>
<div class="gsx-row"><div id="gsx-curves"></div><div id="gsx-ckinfo" class="gsx-panel"></div></div>
<h3>Logit lens and causal tracing at this checkpoint</h3>
<div class="gsx-row" id="gsx-heat"></div>
<h3>The circuit at this checkpoint</h3>
<div class="gsx-bar"><label>circuit size <input type="range" id="gsx-size" min="0" max="0" step="1" value="0"></label>
<span id="gsx-faith"></span></div>
<div id="gsx-hover"></div>
<div class="gsx-row"><div id="gsx-graph"></div><div id="gsx-node" class="gsx-panel"></div></div>
</div>
<h3>Run the model (the final checkpoint, in this page)</h3>
<div class="gsx-bar" id="gsx-query"></div>
<div id="gsx-answer"></div>
<div class="gsx-row"><div id="gsx-lens"></div></div>
<h3>Patch one state from a second query</h3>
<div class="gsx-bar" id="gsx-other"></div>
<div class="gsx-row"><div id="gsx-patch"></div><div id="gsx-patchinfo" class="gsx-panel"></div></div>
</div>"""


@cache
def asset(name: str) -> str:
    """One of the explorer's package files (a script or the stylesheet), checked to be safe to inline."""
    text = (Path(__file__).parent / name).read_text(encoding="utf-8")
    if "</script" in text.lower() or "</style" in text.lower():
        raise CircuitError(f"explorer/{name} contains a closing tag; it cannot be inlined")
    return text


def explorer_figure(data: dict[str, Any]) -> Figure:
    """The explorer as one figure of the report: skeleton, data block, stylesheet and scripts."""
    scripts = "".join(f"<script>{asset(name)}</script>" for name in SCRIPTS)
    html = (
        f'<figure class="gs-figure gsx-figure"><style>{asset("explorer.css")}</style>{SKELETON}'
        f'<script type="application/json" id="gsx-data">{js_json(data)}</script>{scripts}</figure>'
    )
    return Figure(html, title="explorer")


def explorer_figures(
    run_dir: str | Path,
    model: CausalLM,
    dataset: KGDataset,
    position_names: Sequence[str],
    *,
    step: int,
    circuit_size: int | None,
    n_edges: int | None,
    metrics: Sequence[Mapping[str, Any]],
    curves: Sequence[str],
    n: int = 100,
    max_checkpoints: int = 8,
    device: torch.device | str | None = "cpu",
    node_features: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Figure]:
    """The explorer of a run: the per-checkpoint views (when the run has checkpoints and a graph) and the
    in-page model. ``n_edges`` is the model graph's edge count (None: no circuit views). A model the page
    cannot run (not GPT-2) is refused in one line first."""
    check_exportable(model)
    sizes: list[int] = []
    snapshots: list[Snapshot] = []
    if n_edges is not None:
        sizes = circuit_sizes(n_edges, circuit_size)
        by_step = {int(row["step"]): row for row in metrics}
        snapshots = checkpoint_snapshots(
            run_dir,
            sizes,
            n=n,
            max_checkpoints=max_checkpoints,
            metrics=by_step,
            device=device,
            on_checkpoint=(lambda s: log(f"explorer: checkpoint {s}")) if log else None,
        )
    data = explorer_data(
        model,
        dataset,
        position_names,
        step=step,
        snapshots=snapshots,
        sizes=sizes,
        circuit_size=circuit_size,
        metrics=metrics,
        curves=curves,
        node_features=node_features,
    )
    return [explorer_figure(data)]
