"""grokscope tests; ``tests.typecheck`` is loaded first, for the runtime type checks (setup.cfg)."""

from tests import typecheck  # noqa: F401  (jaxtyping's import hook names tests.typecheck.typechecked)
