"""The runtime type checks the test suite applies to grokscope (as TransformerLens does).

``setup.cfg`` passes ``--jaxtyping-packages=interp,circuits,tests.typecheck.typechecked``:
jaxtyping's import hook then decorates every function and dataclass of those packages with
``@jaxtyped(typechecker=typechecked)``, so each call checks its arguments' types and the
tensor shapes named in the annotations (``Float[Tensor, "batch pos d_model"]``) against one
another. The numeric tower is on: an ``int`` passes where a ``float`` is annotated.
``experiments`` is left out: Ray serialises its trial functions and plans to the workers,
and the checker's wrappers hold references that cannot be serialised.

Tests of the one-line errors a user meets also pass values the annotations forbid (float
token ids, an unknown ``Literal`` option): the type checker would stop those first, so such
calls run inside :func:`unchecked`, as a user's code does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import jaxtyping
from beartype import BeartypeConf, beartype

typechecked = beartype(conf=BeartypeConf(is_pep484_tower=True))


@contextmanager
def unchecked(off: bool = True) -> Iterator[None]:
    """Runtime type checks switched off inside (if ``off``), restored on exit."""
    before = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", off or before)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", before)
