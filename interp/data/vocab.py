"""Vocabulary: one readable token per entity, relation, attribute, value and label.

Tokens are whole strings such as ``<e_3>``, ``<r_1>``, ``<attr_2_0>``; a record's text is
their concatenation (``"<e_3><r_1><r_7>"``), which :func:`split_tokens` splits back. A
token's name says its role (:func:`token_role`, the paper's naming): ``<e_N>`` entities,
``<r_N>`` relations, ``<attr_N>`` attributes, ``<attr_N_K>`` comparison labels, ``<N>``
attribute values (and the elements of the algorithmic tasks), ``<op_NAME>`` operators
(:mod:`interp.data.operations`), and the specials; the dataset reader refuses any other name. The
order follows the paper's ``vocab.json`` (entities, relations or attributes and values,
then the specials); ``<pad>`` is always present, last.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import SupportsInt

from interp.errors import DatasetFormatError, GrokscopeError

PAD = "<pad>"
SPECIALS = ["<mask>", "<sep>", "<a>", "</a>", "<q>", "</q>"]
"""The paper's special tokens, in its order."""

_TOKEN = re.compile(r"<[^<>]+>")

ROLES = {
    "entity": re.compile(r"<e_[0-9]+>"),
    "relation": re.compile(r"<r_[0-9]+>"),
    "attribute": re.compile(r"<attr_[0-9]+>"),
    "label": re.compile(r"<attr_[0-9]+_[012]>"),
    "value": re.compile(r"<(?:0|[1-9][0-9]{0,8})>"),
    "operator": re.compile(r"<op_[a-z0-9]+>"),
}
"""The token names a dataset may use, by role (the paper's naming), besides the specials and ``<pad>``."""

TOKEN_NAMES = (
    "<e_N> entities, <r_N> relations, <attr_N> attributes, <attr_N_K> labels (K 0-2), <N> values (0 to 999999999), "
    "<op_NAME> operators, " + " ".join(SPECIALS + [PAD])
)
"""The naming rule, as errors state it."""


def token_role(token: str) -> str | None:
    """``entity``, ``relation``, ``attribute``, ``label``, ``value``, ``special`` or ``pad``; None for any other name."""
    if token == PAD:
        return "pad"
    if token in SPECIALS:
        return "special"
    for role, pattern in ROLES.items():
        if pattern.fullmatch(token):
            return role
    return None


class UnknownTokenError(GrokscopeError, KeyError):
    """A token (or id) that is not in the vocabulary."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


def split_tokens(text: str) -> list[str]:
    """Split ``"<e_3><r_1>"`` into ``["<e_3>", "<r_1>"]``; anything between tokens is an error."""
    if not isinstance(text, str):
        raise DatasetFormatError(f"expected a string of <tokens>, got {type(text).__name__}")
    tokens: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        if match.start() != pos:
            break
        tokens.append(match.group())
        pos = match.end()
    if pos != len(text):
        bad = text[pos : pos + 20]
        raise DatasetFormatError(f"cannot split {text!r} into <tokens>: unexpected {bad!r} at character {pos}")
    return tokens


class Vocab:
    """Token <-> id mapping. ``Vocab(tokens)`` keeps the order given and appends ``<pad>`` if absent."""

    def __init__(self, tokens: Iterable[str]):
        tokens = list(tokens)
        if PAD not in tokens:
            tokens.append(PAD)
        self.tokens: list[str] = tokens
        self.token_to_id: dict[str, int] = {}
        for i, tok in enumerate(tokens):
            if not isinstance(tok, str) or _TOKEN.fullmatch(tok) is None:
                raise DatasetFormatError(f"vocab entry {i} = {tok!r} is not a single <token>")
            if tok in self.token_to_id:
                raise DatasetFormatError(f"vocab token {tok!r} appears twice (entries {self.token_to_id[tok]} and {i})")
            self.token_to_id[tok] = i

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self.token_to_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.tokens == other.tokens

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens)"

    @property
    def pad_id(self) -> int:
        """The id of the padding token."""
        return self.token_to_id[PAD]

    def id(self, token: str) -> int:
        """The id of ``token``; a one-line ``UnknownTokenError`` if the vocabulary lacks it."""
        try:
            return self.token_to_id[token]
        except (KeyError, TypeError):
            raise UnknownTokenError(f"unknown token {token!r}; the vocabulary has {len(self)} tokens") from None

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """The ids of ``tokens``, in order."""
        return [self.id(t) for t in tokens]

    def decode(self, ids: Iterable[SupportsInt]) -> list[str]:
        """Token strings of ``ids`` (ints, numpy integers or 0-d tensors)."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise UnknownTokenError(f"unknown token id {i}; the vocabulary has {len(self)} tokens")
            out.append(self.tokens[i])
        return out
