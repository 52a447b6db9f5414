"""Matplotlib helpers shared by the notebooks: annotated layer x position heatmaps.

The HTML report draws its own SVG (``circuits.views.render``); these are for inline notebook
figures, where a reader wants the numbers written in the cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def annotated_heatmap(
    ax: Any,
    values: Any,
    title: str = "",
    *,
    xlabels: Sequence[str] | None = None,
    cmap: str = "Blues",
    vmin: float = 0.0,
    vmax: float = 1.0,
    fmt: str = "{:.2f}",
    labels: Sequence[Sequence[str]] | None = None,
    xlabel: str = "position",
) -> Any:
    """Draw ``values`` (``state pos``: row 0 at the bottom) on ``ax`` with each cell's number written in it.

    ``labels`` replaces the written numbers (for example ranks over a log-scaled colour);
    text is white on dark cells (dark = high values, or low ones for a reversed ``*_r`` map).
    Returns the image, for a colour bar.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"annotated_heatmap needs a 2-d array (state x position); got shape {values.shape}")
    im = ax.imshow(values, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    span = (vmax - vmin) or 1.0
    for (i, j), v in np.ndenumerate(values):
        t = (v - vmin) / span
        dark = t < 0.4 if cmap.endswith("_r") else t > 0.6
        text = fmt.format(v) if labels is None else labels[i][j]
        ax.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black")
    ax.set_xticks(range(values.shape[1]))
    if xlabels is not None:
        ax.set_xticklabels(list(xlabels)[: values.shape[1]])
    ax.set_yticks(range(values.shape[0]))
    ax.set(title=title, xlabel=xlabel)
    return im
