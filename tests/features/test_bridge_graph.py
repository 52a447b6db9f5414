"""On a model that really grokked: the pruned attribution graph of a two-hop prompt holds the bridge entity.

For a test-ID prompt ``(h, r1, r2)`` with bridge ``b = r1(h)`` and answer ``r2(b)``, a *bridge
feature* is a feature node that

* is active at the ``r1`` position (at any layer) and kept by pruning;
* represents ``b``: its decoder row read through the unembedding (the direct effect of the
  feature on the logits) ranks ``b`` first among the entity tokens;
* feeds the answer: a path of kept edges leads from it to the answer's logit node.

The check against interchange at the same state: the feature writes into MLP output ``L`` at
``r1``, so the state holding what it wrote is ``S[L + 1, r1]`` (the residual after block
``L``). Pasting that state from a prompt whose bridge is ``b'`` makes the model answer
``r2(b')``. Controls that make both checks able to fail: the same decoder criterion with the
bridge of another prompt holds far less often, and pasting ``S[L + 1, h]`` instead (the same
state, the head's position) does not move the answer.
"""

from __future__ import annotations

import torch

from interp.features import TranscoderConfig, attribution_graph, prompt_tokens, prune_graph, train_transcoders_on_model
from interp.features.das import das_pairs, patched_logits, residual_states
from interp.intervene import as_bridge

N_PROMPTS = 8


def reaches(edge_mask: torch.Tensor, source: int, target: int) -> bool:
    """Is there a path of kept edges from ``source`` to ``target`` (``edge_mask[target, source]``)?"""
    seen, stack = {source}, [source]
    while stack:
        for nxt in edge_mask[:, stack.pop()].nonzero().flatten().tolist():
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return target in seen


def bridge_features(g, pruned, tcs, w_u, entities, entity: int, r1: int, answer_node: int) -> list[tuple[int, int]]:
    """``(node, layer)`` of the kept features at ``r1`` whose decoder row ranks ``entity`` first among ``entities``
    through the unembedding and that reach the answer's logit."""
    out = []
    for i, (layer, pos, feature) in enumerate(g.active_features.tolist()):
        if pos != r1 or not bool(pruned.node_mask[i]):
            continue
        top = int(entities[(tcs[layer].W_dec[feature] @ w_u)[entities].argmax()])
        if top == entity and reaches(pruned.edge_mask, i, answer_node):
            out.append((i, layer))
    return out


def test_the_pruned_graph_shows_the_bridge_at_r1_feeding_the_answer(grokked_composition):
    run = grokked_composition
    bridge, ds = as_bridge(run.model), run.dataset
    cfg = TranscoderConfig.for_layer(0, k=8, expansion_factor=4, steps=200, batch_size=1024)
    tcs = {layer: r.dictionary for layer, r in train_transcoders_on_model(bridge, ds, cfg).items()}
    w_u = bridge.W_U.detach()
    entities = torch.tensor([i for i, t in enumerate(ds.vocab.tokens) if t.startswith("<e_")])
    r1, h = ds.schema.position("r1"), ds.schema.position("h")
    examples = ds.examples("test_id")
    prompts, seen = [], set()
    for ex in examples:  # prompts with distinct bridges
        if ex.provenance["bridges"][0] not in seen:
            seen.add(ex.provenance["bridges"][0])
            prompts.append(ex)
        if len(prompts) == N_PROMPTS:
            break
    found, wrong_entity = {}, 0
    for n, ex in enumerate(prompts):
        g = attribution_graph(
            bridge, tcs, prompt_tokens(ds, ex.input_tokens), vocab=ds.vocab, answer=ex.target_tokens[0]
        )
        pruned = prune_graph(g)
        answer_node = g.logit_index(g.logit_strings.index(ex.target_tokens[0]))
        b = ds.vocab.id(ex.provenance["bridges"][0])
        hits = bridge_features(g, pruned, tcs, w_u, entities, b, r1, answer_node)
        assert hits, f"no kept feature at r1 for bridge {ex.provenance['bridges'][0]} of {ex.input_tokens}"
        influence = g.adjacency.abs().sum(0)  # pick the feature with the largest total outgoing effect
        found[n] = max(hits, key=lambda hit: float(influence[hit[0]]))[1]
        other = ds.vocab.id(prompts[(n + 1) % len(prompts)].provenance["bridges"][0])
        wrong_entity += bool(bridge_features(g, pruned, tcs, w_u, entities, other, r1, answer_node))
    assert wrong_entity <= len(prompts) // 4, wrong_entity  # the criterion is specific to the prompt's own bridge

    # interchange at the same state: S[L + 1] at r1, from prompts with another bridge
    pairs = das_pairs(ds, "bridge", "test_id", seed=0)
    assert pairs.examples is not None
    changed = total = control = 0
    for n, ex in enumerate(prompts):
        rows = [i for i, e in enumerate(pairs.examples) if e.input_tokens == ex.input_tokens]
        assert rows, f"no counterfactual pair for {ex.input_tokens}"
        rows_t = torch.tensor(rows)
        state = found[n] + 1
        base = residual_states(bridge, pairs.clean[rows_t], state)
        source = residual_states(bridge, pairs.corrupt[rows_t], state)
        with torch.no_grad():
            at_r1 = patched_logits(bridge, base, source[:, r1], state, r1).argmax(-1)
            at_h = patched_logits(bridge, base, source[:, h], state, h).argmax(-1)
        changed += int((at_r1 == pairs.corrupt_answer[rows_t]).sum())
        control += int((at_h == pairs.corrupt_answer[rows_t]).sum())
        total += len(rows)
    assert total >= N_PROMPTS
    assert changed / total >= 0.8, (changed, total, found)
    assert control / total <= 0.2, (control, total, found)
