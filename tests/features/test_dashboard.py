"""Feature dashboards: exact agreement with dense encoding, ground-truth matches, the logit view, safe HTML."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser

import pytest
import torch

from circuits.views.feature_dashboard import dashboard_figure, dashboard_page, histogram_svg
from interp.features import DictionaryConfig, FeatureError, SparseDictionary, collect_activations, site_width
from interp.features.dashboard import Dashboard, FeatureDashboard, TopExample, dashboard_data, select_features
from interp.features.encoded import feature_activations
from interp.features.ground_truth import VariableMatch, variable_matches
from interp.features.logit_effects import feature_logits, residual_directions
from interp.intervene import cache_activations

from .conftest import SITE, identity_dictionary

EVIL = ['<script>alert("x")</script>', '"><img src=x onerror=alert(1)>', "a&b", "</div>"]


def _random(bridge, hook=SITE, d_sae=48, k=4, architecture="topk", seed=0, positions=None) -> SparseDictionary:
    d_in = site_width(bridge, hook)
    cfg = DictionaryConfig(hook, d_in=d_in, d_sae=d_sae, architecture=architecture, k=k, positions=positions)
    sae = SparseDictionary(cfg).to(bridge.W_E.dtype).initialize(seed=seed)
    return sae.eval().requires_grad_(False)


# ------------------------------------------------------------------------------ the data
def test_activations_agree_with_dense_encoding(bridge, graph):
    sae = _random(bridge)
    fa = feature_activations(sae, bridge, graph, splits=("train_inferred", "test_id"))
    acts = collect_activations(bridge, graph, SITE, splits=("train_inferred", "test_id"))
    dense = torch.zeros(fa.n_rows, sae.d_sae)
    dense[fa.row, fa.feature] = fa.value
    torch.testing.assert_close(dense, sae.encode(acts.acts), rtol=0, atol=0)
    assert torch.equal(fa.example, acts.example) and torch.equal(fa.position, acts.position)
    torch.testing.assert_close(fa.frequency(), (sae.encode(acts.acts) > 0).double().mean(0))
    # every prompt's record is the one with its tokens
    for e, ex in enumerate(fa.examples):
        assert graph.vocab.encode(ex.input_tokens) == fa.prompts.batch.tokens[e, : len(ex.input_tokens)].tolist()


def test_dashboard_top_examples_are_the_largest_activations(bridge, graph):
    sae = _random(bridge, positions=(1, 2))
    fa = feature_activations(sae, bridge, graph, splits=("train_inferred",))
    data = dashboard_data(
        sae, bridge, graph, n=5, select="frequency", n_examples=4, splits=("train_inferred",), activations=fa
    )
    dense = torch.zeros(fa.n_rows, sae.d_sae)
    dense[fa.row, fa.feature] = fa.value
    freq = fa.frequency()
    assert [fd.feature for fd in data.features] == freq.argsort(descending=True, stable=True)[:5].tolist()
    for fd in data.features:
        col = dense[:, fd.feature]
        assert fd.max_activation == pytest.approx(float(col.max())) == fd.top_examples[0].activation
        assert fd.n_active == int((col > 0).sum()) == sum(fd.histogram)
        assert fd.frequency == pytest.approx(float(freq[fd.feature]))
        acts_shown = [ex.activation for ex in fd.top_examples]
        assert acts_shown == sorted(acts_shown, reverse=True)
        for ex in fd.top_examples:
            assert ex.activations[0] is None  # position 0 is not read by this dictionary
            assert (
                ex.activations[ex.position]
                == pytest.approx(ex.activation)
                == pytest.approx(max(a for a in ex.activations if a is not None))
            )
            assert all(t in graph.vocab for t in ex.tokens) and ex.answer in graph.vocab
        # each shown prompt once; no unshown prompt beats the last shown one
        prompts = [ex.tokens for ex in fd.top_examples]
        assert len(set(prompts)) == len(prompts)


def test_a_head_token_detector_matches_the_head_exactly(bridge, graph):
    """A feature reading the embedding at position h that fires only for one head token matches ``h`` with
    precision 1 and recall 1, and no other variable better."""
    hook = "blocks.0.hook_resid_pre"
    acts = collect_activations(bridge, graph, hook, splits=("train_inferred", "test_id"), positions=("h",))
    counts = torch.bincount(acts.prompts.tokens[acts.example, 0])
    tokens = counts.argsort(descending=True, stable=True)[:3].tolist()  # the three most frequent heads
    assert int(counts[tokens[-1]]) >= 3
    W = bridge.W_E.detach()[tokens]  # (3, d_model) the embeddings of three head tokens
    pre = acts.acts @ W.T  # (row, 3)
    heads = acts.prompts.tokens[acts.example, 0]
    on = torch.stack([heads == t for t in tokens], 1)
    threshold = torch.stack([(pre[on[:, i], i].min() + pre[~on[:, i], i].max()) / 2 for i in range(3)])
    assert bool(((pre > threshold) == on).all())  # the three features separate their token from the others
    cfg = DictionaryConfig(
        hook, d_in=W.shape[1], d_sae=3, architecture="jumprelu", positions=("h",), splits=("train_inferred", "test_id")
    )
    sae = SparseDictionary(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(W.T)
        sae.W_dec.copy_(W / W.norm(dim=-1, keepdim=True))
        sae.threshold.copy_(threshold)
    fa = feature_activations(sae, bridge, graph)
    matches = variable_matches(fa, graph, min_support=1)
    for i, t in enumerate(tokens):
        best = matches[i][0]
        assert (best.variable, best.value) == ("h", graph.vocab.tokens[t])
        assert best.precision == 1.0 and best.recall == 1.0 and best.support == int(on[:, i].sum())
        assert all((m.precision, m.recall) < (1.0, 1.0) for m in matches[i][1:])  # nothing else as well


def test_precision_and_recall_count_rows(bridge, graph):
    """Hand-made firing patterns over the real prompts: half the rows of one bridge value, then those plus as
    many rows of other values."""
    sae = identity_dictionary(bridge.cfg.d_model, dtype=torch.float32)
    fa = feature_activations(sae, bridge, graph, splits=("train_inferred",), positions=(1,))
    bridges = [ex.provenance["bridges"][0] for ex in fa.examples]
    value = max(set(bridges), key=bridges.count)
    mine = [r for r in range(fa.n_rows) if bridges[int(fa.example[r])] == value]
    others = [r for r in range(fa.n_rows) if bridges[int(fa.example[r])] != value]
    half = mine[: len(mine) // 2]
    assert len(half) >= 2
    rows = half + half + others[: len(half)]
    feats = [0] * len(half) + [1] * (2 * len(half))
    fa = dataclasses.replace(
        fa, row=torch.tensor(rows), feature=torch.tensor(feats), value=torch.ones(len(rows)), d_sae=3
    )
    m = {x.variable: x for x in variable_matches(fa, graph, min_support=1)[0]}
    assert m["bridge"] == VariableMatch("bridge", value, 1.0, len(half) / len(mine), len(half))
    m1 = {x.variable: x for x in variable_matches(fa, graph, min_support=1)[1]}
    assert m1["bridge"].value == value and m1["bridge"].precision == pytest.approx(0.5)
    assert variable_matches(fa, graph, min_support=1)[2] == []  # never active
    assert variable_matches(fa, graph, min_support=len(half) + 1)[0] == []  # too few rows
    # the aligned choice puts the precise feature first and never picks the dead one
    assert select_features(fa, variable_matches(fa, graph, min_support=1), 3) == [0, 1]


# ----------------------------------------------------------------------------- the logits
def test_logits_are_the_models_own_final_layernorm_and_unembedding(bridge64, graph):
    """For a residual direction d, ``feature_logits * scale`` equals ``unembed(ln_final(c d)) - b_U`` times the
    normalisation scale of ``c d`` (the LayerNorm at a fixed scale is linear)."""
    sae = _random(bridge64, d_sae=6, k=2)
    got = feature_logits(sae, bridge64, [0, 3, 5], ln_scale=2.0)
    d = 100 * sae.W_dec[[0, 3, 5]]
    scale = (d.var(-1, unbiased=False, keepdim=True) + bridge64.cfg.eps).sqrt()
    expected = (bridge64.unembed(bridge64.ln_final(d)) - bridge64.b_U) * scale / 100 / 2.0
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    ("hook", "out"),
    [("blocks.1.attn.hook_z", "blocks.1.hook_attn_out"), ("blocks.2.mlp.hook_post", "blocks.2.hook_mlp_out")],
)
def test_residual_directions_are_what_the_layer_writes(bridge64, graph, hook, out):
    tokens = graph.batch("train_inferred").tokens[:6, :3]
    _, store = cache_activations(bridge64, tokens, [hook, out])
    x = store[hook].reshape(6, 3, -1)
    zero = residual_directions(bridge64, hook, torch.zeros(1, x.shape[-1], dtype=torch.float64))
    written = residual_directions(bridge64, hook, x.reshape(18, -1)) - zero  # linear part
    bias = store[out].reshape(18, -1) - written
    torch.testing.assert_close(bias, bias[:1].expand_as(bias), rtol=0, atol=1e-10)  # the rest is one bias


def test_no_logits_for_a_hook_without_a_direct_path(bridge, graph):
    sae = _random(bridge, hook="blocks.0.attn.hook_q", d_sae=8, k=2)
    data = dashboard_data(sae, bridge, graph, n=2, splits=("test_id",))
    assert all(fd.promoted == [] for fd in data.features) and "no direct path" in data.logit_note


def test_bad_requests_are_one_line(bridge, graph, one_line):
    sae = _random(bridge)
    with pytest.raises(FeatureError) as err:
        dashboard_data(sae, bridge, graph, features=[0, 48], splits=("test_id",))
    assert "0..47" in one_line(err.value)
    with pytest.raises(FeatureError) as err:
        dashboard_data(sae, bridge, graph, n=0)
    one_line(err.value)


# ------------------------------------------------------------------------------- the HTML
class _Tags(HTMLParser):
    VOID = {"meta", "br", "img", "input", "link", "hr", "rect", "line", "circle", "path", "polyline"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.loads, self.tags = [], [], [], set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.loads += [(tag, k, v) for k, v in attrs if k in ("src", "href") or k.startswith("on")]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.add(tag)
        self.loads += [(tag, k, v) for k, v in attrs if k in ("src", "href") or k.startswith("on")]

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append((tag, list(self.stack)))
        else:
            self.stack.pop()


def _hostile_dashboard() -> Dashboard:
    ex = TopExample((EVIL[0], EVIL[1], EVIL[2]), EVIL[3], (None, 0.5, 1.0), 2, 1.0)
    fd = FeatureDashboard(
        7,
        0.25,
        3,
        1.0,
        0.6,
        [ex],
        [(EVIL[0], 2.0)],
        [(EVIL[1], -1.5)],
        [1, 0, 2],
        [0, 0.3, 0.6, 1.0],
        [VariableMatch(EVIL[2], EVIL[0], 1.0, 0.5, 3)],
    )
    return Dashboard(EVIL[0], 8, 12, 4, [EVIL[1], "r1", "r2"], torch.tensor([0.25] + [0.0] * 7), [fd], EVIL[2], EVIL[3])


def test_hostile_token_names_are_escaped_and_the_page_is_offline():
    html = dashboard_page(_hostile_dashboard())
    body = html.split("</style>", 1)[1]
    assert "<script" not in body and "<img" not in body and '</div>"' not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body and "a&amp;b" in body
    urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}  # only the SVG namespace, never fetched
    assert "default-src 'none'" in html
    parser = _Tags()
    parser.feed(html)
    assert parser.errors == [] and parser.stack == []
    assert parser.loads == [] and "script" not in parser.tags and "img" not in parser.tags  # no tag loads anything


def test_figure_shows_inline_with_every_card(bridge, graph):
    sae = _random(bridge)
    data = dashboard_data(sae, bridge, graph, n=3, select="frequency", splits=("test_id",))
    fig = dashboard_figure(data)
    html = fig._repr_html_()
    assert html.count('class="gs-fd-card"') == 3 and html.count('class="gs-fd-hist"') == 3
    for fd in data.features:
        assert f'id="gs-fd-{fd.feature}"' in html
    assert not re.search(r"<[er]_\d+>", html)  # token names are escaped ...
    assert "&lt;e_" in html  # ... and shown


def test_histogram_bars_scale_with_counts():
    svg = histogram_svg([2, 0, 4], [0.0, 1.0, 2.0, 3.0], height=122)  # plot height 122 - 16 - 22 = 84
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    assert heights == [42.0, 0.0, 84.0]
