"""Vocab and TokenBatch: ids decode back, padding and the loss mask sit where they should."""

from __future__ import annotations

import pytest
import torch

from interp.data import SPLITS, Example, UnknownTokenError, Vocab, make_batch, split_tokens
from interp.errors import DatasetFormatError, GrokscopeError


def test_split_tokens():
    assert split_tokens("<e_3><r_1><r_7>") == ["<e_3>", "<r_1>", "<r_7>"]
    assert split_tokens("") == []
    for junk in ("<e_3> <r_1>", "e_3<r_1>", "<e_3><r_1", "<e_3>x"):
        with pytest.raises(DatasetFormatError):
            split_tokens(junk)


def test_vocab(one_line):
    vocab = Vocab(["<e_0>", "<e_1>", "<r_0>", "</a>"])
    assert vocab.tokens[-1] == "<pad>" and len(vocab) == 5 and vocab.pad_id == 4
    assert vocab.encode(["<e_1>", "<r_0>", "</a>"]) == [1, 2, 3]
    assert vocab.decode(vocab.encode(["<r_0>", "<e_0>"])) == ["<r_0>", "<e_0>"]
    assert vocab.id("<pad>") == vocab.token_to_id["<pad>"] == 4
    assert Vocab(vocab.tokens) == vocab and Vocab(["<pad>", "<e_0>"]).pad_id == 0
    with pytest.raises(UnknownTokenError) as info:
        vocab.id("<e_7>")
    assert one_line(info.value) == "unknown token '<e_7>'; the vocabulary has 5 tokens"
    assert isinstance(info.value, KeyError) and isinstance(info.value, GrokscopeError)
    with pytest.raises(UnknownTokenError):
        vocab.decode([5])
    with pytest.raises(DatasetFormatError):
        Vocab(["<e_0>", "<e_0>"])


def test_batch_layout(composition):
    examples = composition.splits["train"][-3:] + composition.splits["train"][:2]  # 3-token then 2-token prompts
    n = len(composition.splits["train"])
    batch = composition.batch("train")[torch.tensor([n - 3, n - 2, n - 1, 0, 1])]
    assert batch.tokens.shape == (5, 5) and batch.tokens.dtype == torch.int64
    assert batch.prompt_len.tolist() == [3, 3, 3, 2, 2]
    pad = composition.vocab.pad_id
    assert batch.tokens[3:, 4].tolist() == [pad, pad] and (batch.tokens[:3] != pad).all()
    expected_mask = [[False, False, True, True, False]] * 3 + [[False, True, True, False, False]] * 2
    assert batch.loss_mask.tolist() == expected_mask
    for row, ex in zip(range(5), examples):
        ids = batch.tokens[row].tolist()
        assert composition.vocab.decode(ids)[: len(ex.input_tokens) + 2] == list(ex.input_tokens + ex.target_tokens)
        assert composition.vocab.decode([batch.answer[row]]) == [ex.answer]
        # the positions flagged by loss_mask predict exactly the target tokens
        predicted = [ids[p + 1] for p in range(5) if batch.loss_mask[row, p]]
        assert composition.vocab.decode(predicted) == list(ex.target_tokens)
        assert batch.tokens[row, batch.answer_pos[row] + 1] == batch.answer[row]


@pytest.mark.parametrize("split", SPLITS)
def test_batch_of_every_split(split, comparison, complex_ds):
    for ds in (comparison, complex_ds):
        batch = ds.batch(split)
        examples = ds.splits[split]
        assert len(batch) == len(examples) and batch.tokens.shape[1] == max(
            len(ex.input_tokens) + len(ex.target_tokens) for ex in examples
        )
        assert batch.loss_mask.sum().item() == sum(len(ex.target_tokens) for ex in examples)
        assert ds.vocab.decode(batch.answer.tolist()) == [ex.answer for ex in examples]


def test_batch_indexing_and_device(comparison):
    batch = comparison.batch("test_id", device="cpu")
    sub = batch[torch.tensor([4, 0])]
    assert torch.equal(sub.tokens, batch.tokens[[4, 0]]) and torch.equal(sub.answer, batch.answer[[4, 0]])
    assert len(batch[2:7]) == 5 and len(batch[3]) == 1 and torch.equal(batch[-1].tokens[0], batch.tokens[-1])
    moved = batch.to("cpu")
    assert all(t.device.type == "cpu" for t in (moved.tokens, moved.prompt_len, moved.answer, moved.loss_mask))


def test_empty_and_unknown_splits(composition, one_line):
    empty = make_batch([], composition.vocab)
    assert empty.tokens.shape == (0, 0) and len(empty) == 0
    with pytest.raises(GrokscopeError) as info:
        composition.batch("valid")
    msg = one_line(info.value)
    assert "'valid'" in msg and all(name in msg for name in SPLITS)
    with pytest.raises(UnknownTokenError):
        make_batch([Example(("<e_0>", "<r_9999>"), ("<e_1>", "</a>"), "atomic")], composition.vocab)
