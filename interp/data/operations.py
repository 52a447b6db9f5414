"""Binary operations of the algorithmic grokking tasks, and the table of one as a graph.

Power et al. (2022) found grokking on tables of binary operations ``a o b = c``: modular
arithmetic over Z_p (``a + b``, ``a - b``, ``a * b``, ``a / b``, ``a^2 + b^2``) and the
composition of permutations of five elements (the group S5, 120 elements). Nanda et al.
(2023) reverse-engineered the model that groks ``a + b mod 113``. Here an operation is a
name (:data:`OPERATIONS`), its elements are ``0 .. n - 1`` (their tokens ``<0>`` ..), and
:class:`OperationTable` is the "knowledge graph" of a dataset: the operation, its modulus,
and which pairs the model trains on.

Division ``a / b`` is ``a * b^(p-2) mod p`` (Fermat) and is defined for ``b != 0`` only;
an S5 element ``i`` is the ``i``-th permutation of ``(0, 1, 2, 3, 4)`` in lexicographic
order and ``a o b`` is ``a`` after ``b`` (``(a o b)(x) = a(b(x))``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from interp.errors import GrokscopeError

MODULAR = ("add", "sub", "mul", "div", "x2y2")
"""The modular operations over Z_p."""
OPERATIONS = (*MODULAR, "s5")
"""Every operation a dataset may use."""
SYMBOLS = {"add": "a + b", "sub": "a - b", "mul": "a * b", "div": "a / b", "x2y2": "a^2 + b^2", "s5": "a o b"}
"""How each operation is written (in titles and errors)."""
S5_ORDER = 120


def operator_token(operation: str) -> str:
    """The token that closes a prompt of ``operation`` (Nanda's ``=``): ``<op_add>`` ..."""
    return f"<op_{operation}>"


def is_prime(n: int) -> bool:
    """Is ``n`` a prime number."""
    return n >= 2 and all(n % k for k in range(2, int(n**0.5) + 1))


@cache
def permutations(n: int = 5) -> tuple[tuple[int, ...], ...]:
    """The permutations of ``0 .. n-1`` in lexicographic order (element ``i`` of the group is the ``i``-th)."""
    return tuple(itertools.permutations(range(n)))


@cache
def _permutation_index(n: int = 5) -> dict[tuple[int, ...], int]:
    return {perm: i for i, perm in enumerate(permutations(n))}


def n_elements(operation: str, modulus: int) -> int:
    """How many elements the operation acts on (``modulus``; 120 for S5)."""
    return S5_ORDER if operation == "s5" else modulus


def apply(operation: str, modulus: int, a: int, b: int) -> int | None:
    """``a o b`` (None where it is undefined: division by 0)."""
    p = modulus
    if operation == "add":
        return (a + b) % p
    if operation == "sub":
        return (a - b) % p
    if operation == "mul":
        return (a * b) % p
    if operation == "div":
        return None if b % p == 0 else (a * pow(b, p - 2, p)) % p
    if operation == "x2y2":
        return (a * a + b * b) % p
    if operation == "s5":
        pa, pb = permutations()[a], permutations()[b]
        return _permutation_index()[tuple(pa[pb[x]] for x in range(5))]
    raise GrokscopeError(f"unknown operation {operation!r}; choose one of {', '.join(OPERATIONS)}")


def table(operation: str, modulus: int) -> list[tuple[int, int, int]]:
    """Every defined ``(a, b, a o b)``, ``a`` major, ``b`` minor."""
    n = n_elements(operation, modulus)
    rows = ((a, b, apply(operation, modulus, a, b)) for a in range(n) for b in range(n))
    return [(a, b, c) for a, b, c in rows if c is not None]


class OperationTable:
    """The "graph" of an algorithmic dataset: an operation, its modulus and the training pairs.

    JSON (``graph.json``): ``{"operation": "add", "modulus": 113, "train_pairs": [[a, b], ...]}``.
    """

    def __init__(self, operation: str, modulus: int, train_pairs: Sequence[Sequence[int]]):
        if operation not in OPERATIONS:
            raise GrokscopeError(f"unknown operation {operation!r}; choose one of {', '.join(OPERATIONS)}")
        self.operation = operation
        self.modulus = int(modulus)
        self.n = n_elements(operation, self.modulus)
        self.train_pairs: set[tuple[int, int]] = {(int(a), int(b)) for a, b in train_pairs}

    @classmethod
    def from_json(cls, graph: Mapping[str, Any]) -> OperationTable:
        """From ``{"operation", "modulus", "train_pairs"}``."""
        return cls(graph["operation"], graph["modulus"], graph["train_pairs"])

    def __repr__(self) -> str:
        return f"OperationTable({SYMBOLS[self.operation]}, n={self.n}, {len(self.train_pairs)} training pairs)"

    @property
    def elements(self) -> list[str]:
        """The element tokens ``<0>`` .. ``<n-1>``, in order."""
        return [f"<{i}>" for i in range(self.n)]

    def answer(self, a: int, b: int) -> int | None:
        """``a o b`` (None where undefined)."""
        return apply(self.operation, self.modulus, a, b)

    def is_ood(self, a: str, b: str) -> bool:
        """Is the pair ``(a, b)`` (tokens) held out of training."""
        return (element(a), element(b)) not in self.train_pairs


def element(token: str) -> int:
    """The element a token ``<N>`` names."""
    if not (token.startswith("<") and token.endswith(">") and token[1:-1].isdigit()):
        raise GrokscopeError(f"{token!r} is not an element token <N>")
    return int(token[1:-1])


__all__ = [
    "MODULAR",
    "OPERATIONS",
    "SYMBOLS",
    "OperationTable",
    "apply",
    "element",
    "is_prime",
    "n_elements",
    "operator_token",
    "permutations",
    "table",
]
