"""circuits.views: what circuit finding found, shown as self-contained, offline HTML.

Nothing here finds or scores a circuit; every module draws what the analyses of
:mod:`circuits` and :mod:`interp` compute. A :class:`~circuits.views.figures.Figure` is an
HTML fragment that needs no network: a notebook displays it inline, and a page holds many.

* renderers: :mod:`~circuits.views.figures` (figures, escaping, the circuitsvis bundle and
  attention view, tables, pages), :mod:`~circuits.views.charts` (heatmaps, line charts),
  :mod:`~circuits.views.graph_svg` (a circuit as a layered graph); :mod:`~circuits.views.render`
  re-exports the three for notebooks;
* the run report: :mod:`~circuits.views.sections` (each section's figures: grokking curves, lens
  and tracing heatmaps, localisation, the circuit, attention, formation),
  :mod:`~circuits.views.report` (``write_report``: the page of a run) and
  :mod:`~circuits.views.explorer` (the interactive section that runs the model in the page);
* feature views: :mod:`~circuits.views.feature_dashboard` (dashboard cards),
  :mod:`~circuits.views.feature_graph` (an attribution graph), :mod:`~circuits.views.feature_report`
  (the report's section per saved dictionary or transcoder set).
"""
