"""The computational graph of a transformer, and circuits as scored subgraphs of it.

The residual stream at one position is a running sum: what a component *reads* (an
attention head's query, key or value input, an MLP's input, the final logits) is the sum
of what every earlier component at that position *wrote* (the token embedding, each
head's output, each MLP's output) plus constants (position embedding, biases). So the
model is a graph whose edges are writer -> reader pairs at one position:

* writers: ``emb@p``, ``a{L}.{H}@p`` (head H of layer L), ``m{L}@p`` (MLP of layer L);
* readers: the q, k and v inputs of every head, every MLP input, and ``out@p`` (the final
  residual, read by the unembedding) at the positions the metric reads the logits.

A writer feeds every reader after it: a layer-``L`` reader is fed by the embedding and
all components of layers below ``L``; an MLP is also fed by the heads of its own layer.
Information moves *between* positions only inside attention heads: head ``a{L}.{H}``
reads keys and values at positions ``p' <= p`` to write at ``p``. An edge into a head's
``k`` or ``v`` input at ``p'`` is therefore information the head may carry to a later
position (TransformerLens 4's ``enumerate_edges`` builds the same graph).

:class:`ModelGraph` is the full graph of a model at one prompt length, with every edge
at a fixed index of a ``pos writer reader`` tensor, so that edge scores and circuit
masks are plain tensors. :class:`CircuitGraph` is a circuit: a set of edges with their
scores and metadata, which saves to JSON and back exactly. :func:`prune` turns edge scores
into a circuit, :func:`connected` keeps the edges on a path from an embedding to the logits.

Three modules, re-exported here: :mod:`circuits.space` (nodes, edges, :class:`ModelGraph`),
:mod:`circuits.circuit` (:class:`CircuitGraph` and its JSON), :mod:`circuits.pruning`.
"""

from circuits.circuit import FORMAT, VERSION, CircuitGraph
from circuits.pruning import connected, prune
from circuits.space import HEAD_CHANNELS, Channel, CircuitError, Edge, ModelGraph, Node, NodeKind

__all__ = [
    "FORMAT",
    "HEAD_CHANNELS",
    "VERSION",
    "Channel",
    "CircuitError",
    "CircuitGraph",
    "Edge",
    "ModelGraph",
    "Node",
    "NodeKind",
    "connected",
    "prune",
]
