"""The complex-reasoning task's query types: what each names, and the trainer scoring each on its own."""

from __future__ import annotations

import json

import pytest
import torch

from interp.data import ComplexConfig, generate
from interp.data.tasks.base import TaskSchemaError
from interp.data.tasks.complex import LABEL_NAMES
from interp.runs import load_checkpoint
from interp.train import load_run_config, train
from interp.train.objective import accuracy, query_type_batches

SMALL = ComplexConfig(
    n_entities=60,
    n_attributes=6,
    n_values=5,
    ood_fraction=0.2,
    n_hard_per_label=4,
    probe_size=100,
    train_id_id_fraction=0.1,
    train_id_ood_fraction=0.1,
)
SMALL_RUN = [
    *(
        f"data.{k}={v}"
        for k, v in (
            ("n_entities", 60),
            ("n_attributes", 6),
            ("n_values", 5),
            ("ood_fraction", 0.2),
            ("n_hard_per_label", 4),
            ("probe_size", 100),
            ("train_id_id_fraction", 0.1),
            ("train_id_ood_fraction", 0.1),
        )
    ),
    "model.n_layers=2",
    "model.d_model=32",
    "model.n_heads=2",
    "model.d_mlp=64",
    "train.batch_size=64",
    "train.max_steps=20",
    "train.eval_every=10",
    "train.checkpoint_every=10",
    "train.checkpoint_dense_until=20",
    "train.progress=false",
    "train.tensorboard=false",
    "train.threads=1",
]


@pytest.fixture(scope="module")
def small():
    return generate(SMALL)


def test_query_types_partition_each_split_by_meaning(small):
    kg, schema = small.kg, small.schema
    for split in ("train_inferred", "test_id", "test_ood"):
        examples = small.examples(split)
        types = schema.query_types(kg, split, examples)
        rows = sorted(i for idx in types.values() for i in idx)
        assert rows == list(range(len(examples)))  # a partition
        for name, idx in types.items():
            for i in idx:
                attr, _, e1, _, e2, *_ = examples[i].input_tokens
                if split == "train_inferred":
                    n_ood = kg.is_ood(e1, attr) + kg.is_ood(e2, attr)
                    assert name == ("id_id", "id_ood", "ood_ood")[n_ood]
                else:
                    assert name == LABEL_NAMES[kg.label(attr, e1, e2)]
    ood = schema.query_types(kg, "test_ood", small.examples("test_ood"))
    assert {k: len(v) for k, v in ood.items()} == {name: SMALL.n_hard_per_label for name in LABEL_NAMES}
    train = schema.query_types(kg, "train_inferred", small.examples("train_inferred"))
    assert set(train) == {"id_id", "id_ood"}  # the task trains no OOD-OOD comparison
    assert schema.query_types(kg, "id_atomic", small.examples("id_atomic")) == {}
    with pytest.raises(TaskSchemaError, match="not a complex-reasoning query"):
        schema.query_types(kg, "train_inferred", small.examples("id_atomic")[:1])


def test_composition_has_no_query_types(graph_composition):
    ds = graph_composition
    assert all(ds.schema.query_types(ds.kg, s, ds.examples(s)) == {} for s in ("train_inferred", "test_id", "test_ood"))


@pytest.fixture(scope="module")
def graph_composition():
    from interp.data import CompositionConfig

    return generate(CompositionConfig(n_entities=40, n_relations=8, out_degree=4, phi=2, probe_size=50))


def test_trainer_scores_every_query_type(tmp_path):
    torch.set_num_threads(1)
    cfg = load_run_config("complex-tiny", SMALL_RUN)
    train(cfg, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    want = {f"{s}/{n}" for s in ("test_id", "test_ood") for n in LABEL_NAMES} | {
        "train_inferred/id_id",
        "train_inferred/id_ood",
    }
    assert all(want <= set(r) for r in rows)
    run = load_checkpoint(tmp_path / "run", device="cpu")
    assert run.step == rows[-1]["step"]
    batches = {s: run.dataset.batch(s) for s in ("id_atomic", "ood_atomic", "train_inferred", "test_id", "test_ood")}
    for key, batch in query_type_batches(run.dataset, batches).items():
        assert rows[-1][key] == accuracy(run.model, batch)  # the metric is the accuracy on exactly those queries
    for split in ("test_id", "test_ood"):  # the label groups add up to the split
        sizes = {
            n: len(i)
            for n, i in run.dataset.schema.query_types(run.dataset.kg, split, run.dataset.examples(split)).items()
        }
        total = sum(rows[-1][f"{split}/{n}"] * sizes[n] for n in LABEL_NAMES) / sum(sizes.values())
        assert total == pytest.approx(rows[-1][split], abs=1e-12)
