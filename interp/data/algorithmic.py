"""Generate an algorithmic grokking dataset: a random split of an operation's table.

A prompt is Nanda et al.'s ``a b =``: the two operands and the operation's token, which
plays the role of ``=`` (``<5><17><op_add>`` -> ``<22></a>``). A fraction
``train_fraction`` of the defined pairs (drawn with the config's seed) trains; every other
pair is ``test_id``; ``train_inferred`` is a probe of the training pairs. The knowledge-graph
splits that have no meaning here (``id_atomic``, ``ood_atomic``, ``test_ood``) are empty,
and score NaN in the metrics.
"""

from __future__ import annotations

import numpy as np

from interp.data.config import AlgorithmicConfig
from interp.data.dataset import KGDataset, choose
from interp.data.operations import n_elements, operator_token, table
from interp.data.records import ANSWER_CLOSE, Example
from interp.data.vocab import PAD, SPECIALS, Vocab
from interp.errors import ConfigError


def algorithmic_vocab(config: AlgorithmicConfig) -> Vocab:
    """Element tokens ``<0>`` .. ``<n-1>``, the operator token, then the paper's specials and ``<pad>``."""
    n = n_elements(config.operation, config.modulus)
    return Vocab([f"<{i}>" for i in range(n)] + [operator_token(config.operation)] + SPECIALS + [PAD])


def _example(a: int, b: int, c: int, op: str, kind: str) -> Example:
    return Example((f"<{a}>", f"<{b}>", op), (f"<{c}>", ANSWER_CLOSE), kind, {"operands": [a, b]})


def generate_algorithmic(config: AlgorithmicConfig) -> KGDataset:
    """The dataset ``config`` describes: train / held-out pairs of the operation's table."""
    rows = table(config.operation, config.modulus)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(rows))
    n_train = round(config.train_fraction * len(rows))
    if not 0 < n_train < len(rows):
        raise ConfigError(f"train_fraction = {config.train_fraction} leaves no training or no test pair")
    op = operator_token(config.operation)
    train_rows = sorted(order[:n_train].tolist())
    test_rows = sorted(order[n_train:].tolist())
    train = [_example(*rows[i], op, "inferred") for i in train_rows]
    probe = [train[i] for i in sorted(choose(rng, len(train), config.probe_size).tolist())]
    splits = {
        "train": train,
        "id_atomic": [],
        "ood_atomic": [],
        "train_inferred": [Example(ex.input_tokens, ex.target_tokens, "train_inferred", ex.provenance) for ex in probe],
        "test_id": [_example(*rows[i], op, "test_inferred_iid") for i in test_rows],
        "test_ood": [],
    }
    graph = {
        "operation": config.operation,
        "modulus": config.modulus,
        "train_pairs": [[rows[i][0], rows[i][1]] for i in train_rows],
    }
    return KGDataset("algorithmic", config, algorithmic_vocab(config), splits, graph)


__all__ = ["algorithmic_vocab", "generate_algorithmic"]
