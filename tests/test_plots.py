"""The notebooks' heatmap helper: one cell per value, its number written in it, the axes labelled."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from interp.plots import annotated_heatmap  # noqa: E402


def test_heatmap_writes_every_value_and_labels_the_positions():
    values = np.array([[0.1, 0.9, 0.5], [1.0, 0.0, 0.25]])
    fig, ax = plt.subplots()
    im = annotated_heatmap(ax, values, "MRR", xlabels=["h", "r1", "r2", "unused"])
    assert np.array_equal(im.get_array(), values)
    texts = {(t.get_position(), t.get_text()): t.get_color() for t in ax.texts}
    assert len(texts) == values.size
    assert texts[((1, 0), "0.90")] == "white" and texts[((1, 1), "0.00")] == "black"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["h", "r1", "r2"]
    assert ax.get_title() == "MRR" and list(ax.get_yticks()) == [0, 1]
    plt.close(fig)


def test_heatmap_custom_labels_and_reversed_map():
    values = np.array([[0.0, 2.0]])
    fig, ax = plt.subplots()
    annotated_heatmap(ax, values, cmap="Reds_r", vmax=2.0, labels=[["1", "100"]])
    assert [(t.get_text(), t.get_color()) for t in ax.texts] == [("1", "white"), ("100", "black")]
    with pytest.raises(ValueError, match="2-d array"):
        annotated_heatmap(ax, np.zeros(3))
    plt.close(fig)
