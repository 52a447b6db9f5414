"""One record of a knowledge-graph dataset: a prompt and its target, as readable tokens.

An :class:`Example` is what every split holds and every analysis reads: ``input_tokens``
(``<e_3><r_1><r_7>``), ``target_tokens`` (the answer, then ``</a>``), the record's
``type`` (``atomic``, ``inferred``, ``test_inferred_iid`` ...) and, where known, its
``provenance`` (the bridge entities or attribute values, the atomic facts it chains).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ANSWER_OPEN = "<a>"
ANSWER_CLOSE = "</a>"


@dataclass(frozen=True)
class Example:
    """One record: a prompt and its target (the answer token, then ``</a>``).

    The complex task's prompts end in ``<a>`` (the paper writes ``...</q><a><label></a>``);
    in files ``<a>`` opens ``target_text`` as in the paper, in memory it closes the prompt,
    so the first target token is always the answer.
    """

    input_tokens: tuple[str, ...]
    target_tokens: tuple[str, ...]
    type: str
    provenance: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def answer(self) -> str:
        """The answer token: the first target token."""
        return self.target_tokens[0]

    @property
    def input_text(self) -> str:
        """The prompt as one string (``<e_3><r_1><r_7>``)."""
        return "".join(self.input_tokens)

    @property
    def target_text(self) -> str:
        """Prompt and target as one string, as the paper's ``target_text`` (in memory ``<a>`` ends the prompt)."""
        return "".join(self.input_tokens + self.target_tokens)

    def to_record(self) -> dict[str, Any]:
        """The paper's record (``input_text``, ``target_text``, ``type``) plus ``provenance``."""
        prompt = self.input_tokens
        if prompt and prompt[-1] == ANSWER_OPEN:
            prompt = prompt[:-1]
        record: dict[str, Any] = {
            "input_text": "".join(prompt),
            "target_text": self.target_text,
            "type": self.type,
        }
        if self.provenance is not None:
            record["provenance"] = self.provenance
        return record


__all__ = ["ANSWER_CLOSE", "ANSWER_OPEN", "Example"]
