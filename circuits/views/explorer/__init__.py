"""The report's interactive explorer: one offline HTML section that runs the model in the page.

What the page receives is built here in Python and handed over as JSON:

- :mod:`circuits.views.explorer.weights`: the model's parameters as float16, base64-encoded, with its
  shapes (GPT-2: token and position embeddings, pre-LayerNorm blocks, the final LayerNorm,
  the tied or untied unembedding); ``explorer/model.js`` runs the forward pass on them;
- :mod:`circuits.views.explorer.timeline`: per checkpoint (a bounded, evenly spaced selection) the
  logit-lens and tracing heatmaps, the edge scores and the circuit at a few sizes with its
  faithfulness;
- :mod:`circuits.views.explorer.data`: the queries one can pick, the node layout of the circuit
  graph and the whole data block;
- :mod:`circuits.views.explorer.page`: the section itself (HTML, the data block, CSS and scripts).
"""

from circuits.views.explorer.data import explorer_data
from circuits.views.explorer.page import explorer_figure
from circuits.views.explorer.weights import export_weights, rounded_model

__all__ = ["explorer_data", "explorer_figure", "export_weights", "rounded_model"]
