"""Synthetic knowledge graphs of Wang et al. (NeurIPS 2024), in the paper's JSON layout.

Atomic facts are stored knowledge (``<e_3><r_1>`` -> ``<e_5></a>``); inferred facts must be
derived from them (``<e_3><r_1><r_7>`` -> ``<e_9></a>`` via bridge ``<e_5>``). A slice of the
atomic facts (composition) or of the entities per attribute (comparison) is OOD: its
atomic facts are trained, but no inferred fact built on it is, so OOD test facts ask
whether the model composes facts it only ever saw alone. Training = atomic facts + round(
phi * #ID atomic) sampled ID inferred facts; the ratio phi sets how fast a model groks.

Usage::

    ds = generate(data_config("composition-small", ["seed=1"]))
    ds.splits["test_id"][0].provenance["bridges"]   # the bridge entity of a 2-hop fact
    batch = ds.batch("train")                        # TokenBatch of padded token ids
    ds.save("data/composition-small"); ds2 = load_dataset("data/composition-small")

What a task is (prompt positions, swappable tokens, lens targets, key states) is its
schema: ``ds.schema`` / ``task_schema(ds)`` (:mod:`interp.data.tasks`); ``ds.kg`` is the
typed graph (``CompositionGraph`` or ``AttributeGraph``), indexed once per dataset.

Splits: ``train`` and the probes ``id_atomic``, ``ood_atomic``, ``train_inferred``,
``test_id``, ``test_ood`` (each at most ``probe_size`` records, as the paper's test.json).
"""

from __future__ import annotations

from interp.data.algorithmic import algorithmic_vocab, generate_algorithmic
from interp.data.comparison import compare, comparison_vocab, generate_comparison, generate_complex
from interp.data.composition import composition_vocab, depth_test, generate_composition, heldout_chains
from interp.data.config import (
    DATA_PRESETS,
    AlgorithmicConfig,
    ComparisonConfig,
    ComplexConfig,
    CompositionConfig,
    DataConfig,
    config_from_dict,
    data_config,
)
from interp.data.dataset import SPLITS, Example, KGDataset, TokenBatch, UnknownSplitError, make_batch
from interp.data.graphs import AttributeGraph, CompositionGraph, KnowledgeGraph
from interp.data.paper import load_dataset
from interp.data.tasks import SCHEMAS, TaskSchema, TaskSchemaError, task_schema
from interp.data.vocab import PAD, SPECIALS, UnknownTokenError, Vocab, split_tokens
from interp.errors import ConfigError


def generate(config: DataConfig) -> KGDataset:
    """Generate the dataset ``config`` describes (dispatching on ``config.task``)."""
    generators = {
        "composition": generate_composition,
        "comparison": generate_comparison,
        "complex": generate_complex,
        "algorithmic": generate_algorithmic,
    }
    if getattr(config, "task", None) not in generators:
        raise ConfigError(
            f"cannot generate data for {config!r}; expected a composition, comparison, complex or algorithmic config"
        )
    return generators[config.task](config)


__all__ = [
    "DATA_PRESETS",
    "AlgorithmicConfig",
    "PAD",
    "SCHEMAS",
    "SPECIALS",
    "SPLITS",
    "AttributeGraph",
    "ComparisonConfig",
    "ComplexConfig",
    "CompositionConfig",
    "CompositionGraph",
    "DataConfig",
    "Example",
    "KGDataset",
    "KnowledgeGraph",
    "TaskSchema",
    "TaskSchemaError",
    "TokenBatch",
    "UnknownSplitError",
    "UnknownTokenError",
    "Vocab",
    "algorithmic_vocab",
    "compare",
    "comparison_vocab",
    "composition_vocab",
    "config_from_dict",
    "data_config",
    "depth_test",
    "heldout_chains",
    "generate",
    "generate_algorithmic",
    "generate_comparison",
    "generate_complex",
    "generate_composition",
    "load_dataset",
    "make_batch",
    "split_tokens",
    "task_schema",
]
