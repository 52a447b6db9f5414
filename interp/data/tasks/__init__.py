"""One schema per task, in a registry: what every analysis needs to know about a task's prompts.

Usage::

    schema = task_schema(dataset)          # the dataset's schema (cached on the dataset)
    schema.positions                       # ('h', 'r1', 'r2')
    schema.swap_position("r1")             # 1
    schema.candidates(dataset.kg, prompt, "h", id_only=True)
    SCHEMAS["comparison"]().lens_targets   # ('answer', 'attr', 'e1', 'e2', 'v1', 'v2')

:data:`SCHEMAS` maps a schema's name to its class. A dataset's ``task`` names a family
(``composition``, ``comparison``, ``complex``, ``algorithmic``); the first registered schema of that task
whose :meth:`~TaskSchema.fit` accepts the dataset's config and examples describes it (a
composition with ``n_hops > 2`` gets ``khop``). To add a task, write a module with a
:class:`TaskSchema` subclass and :func:`register` it here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from interp.data.records import Example
from interp.data.tasks.algorithmic import AlgorithmicSchema
from interp.data.tasks.base import Candidate, Intermediate, KeyState, TaskSchema, TaskSchemaError, choices
from interp.data.tasks.comparison import ComparisonSchema
from interp.data.tasks.complex import ComplexSchema
from interp.data.tasks.composition import CompositionSchema
from interp.data.tasks.khop import KHopSchema

if TYPE_CHECKING:  # the dataset module imports this registry
    from interp.data.dataset import KGDataset

SCHEMAS: dict[str, type[TaskSchema]] = {}
"""Schema classes by name, in registration order."""


def register(schema: type[TaskSchema]) -> type[TaskSchema]:
    """Add a schema class to :data:`SCHEMAS` (usable as a class decorator)."""
    if schema.name in SCHEMAS and SCHEMAS[schema.name] is not schema:
        raise TaskSchemaError(f"a schema named {schema.name!r} is already registered ({SCHEMAS[schema.name].__name__})")
    SCHEMAS[schema.name] = schema
    return schema


for _schema in (CompositionSchema, KHopSchema, ComparisonSchema, ComplexSchema, AlgorithmicSchema):
    register(_schema)


def known_tasks() -> tuple[str, ...]:
    """The dataset tasks some schema describes, in registration order."""
    return tuple(dict.fromkeys(s.task for s in SCHEMAS.values()))


def schema_for(task: str, config: Any = None, splits: Mapping[str, Sequence[Example]] | None = None) -> TaskSchema:
    """The schema of a dataset of ``task`` with ``config`` (None: read from the files) and ``splits``."""
    for cls in SCHEMAS.values():
        if cls.task == task:
            schema = cls.fit(config, splits or {})
            if schema is not None:
                return schema
    if task in known_tasks():
        raise TaskSchemaError(f"no registered schema fits this {task} dataset (config {config!r})")
    raise TaskSchemaError(f"unknown task {task!r}; known: {choices(known_tasks())}")


def task_schema(dataset: KGDataset | str) -> TaskSchema:
    """The schema of a dataset (built once, cached on it), or the default schema of a registered name."""
    if isinstance(dataset, str):
        if dataset not in SCHEMAS:
            raise TaskSchemaError(f"unknown task schema {dataset!r}; known: {choices(list(SCHEMAS))}")
        return SCHEMAS[dataset]()
    return dataset.schema


__all__ = [
    "SCHEMAS",
    "AlgorithmicSchema",
    "Candidate",
    "ComparisonSchema",
    "ComplexSchema",
    "CompositionSchema",
    "Intermediate",
    "KHopSchema",
    "KeyState",
    "TaskSchema",
    "TaskSchemaError",
    "known_tasks",
    "register",
    "schema_for",
    "task_schema",
]
