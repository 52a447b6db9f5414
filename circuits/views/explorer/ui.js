/* grokscope explorer: wiring. Reads the JSON data block, builds the model, and redraws the views
 * when the checkpoint slider, the edge-count slider, a query or a node changes.
 * window.gsExplorer exposes the state and the model (for tests and the console). */
"use strict";
(function () {
  const root = document.getElementById("gsx-root");
  if (!root) return;
  const data = JSON.parse(document.getElementById("gsx-data").textContent);
  const {Model, softmax, topk} = window.gsModel;
  const {heatmap, lineChart, graph} = window.gsPlots;
  const model = new Model(data.weights);
  const L = model.cfg.n_layers, V = data.vocab, POS = data.positions, tl = data.timeline;
  const STATES = Array.from({length: L + 1}, (_, i) => String(i));
  const $ = id => document.getElementById(id);
  const fmt = v => (v == null ? "n/a" : Number(v).toFixed(3));
  const tok = id => V[id];
  const S = {ck: tl ? tl.checkpoints.length - 1 : 0, size: 0, query: null, other: null, node: null, cell: null};

  function put(id, ...children) {
    const el = $(id);
    el.replaceChildren(...children);
    return el;
  }

  function para(str, cls) {
    const p = document.createElement("p");
    if (cls) p.className = cls;
    p.textContent = str;
    return p;
  }

  function listing(rows) {  // [[label, value]] as a small definition table
    const t = document.createElement("table");
    t.className = "gsx-table";
    rows.forEach(([k, v]) => {
      const tr = t.insertRow();
      tr.insertCell().textContent = k;
      tr.insertCell().textContent = v;
    });
    return t;
  }

  function topTokens(logits, k) {
    const p = softmax(logits);
    return topk(p, k).map(i => ({id: i, p: p[i]}));
  }

  // ------------------------------------------------------------------ checkpoint views
  function drawCheckpoint() {
    if (!tl) return;
    const ck = tl.checkpoints[S.ck];
    $("gsx-ckpt").value = S.ck;
    $("gsx-step").textContent = `step ${ck.step} (checkpoint ${S.ck + 1} of ${tl.checkpoints.length})`;
    if (data.curves.steps.length) put("gsx-curves", lineChart(data.curves.steps, data.curves.series, ck.step));
    const acc = Object.entries(ck.accuracy).map(([k, v]) => [k, fmt(v)]);
    put("gsx-ckinfo", para(`accuracy at step ${ck.step}`, "gsx-h"), listing(acc),
      ...ck.errors.map(e => para(e, "gsx-err")));
    const maps = [];
    for (const [name, m] of Object.entries(ck.lens)) maps.push(heatmap(m, STATES, POS, {title: `lens MRR of ${name}`, rowTitle: "state"}));
    for (const [name, m] of Object.entries(ck.tracing)) maps.push(heatmap(m, STATES, POS, {title: `swap ${name}: top-1 change`, rowTitle: "state"}));
    const F = ck.fourier;
    if (F && F.norms) {  // modular arithmetic: each frequency's norm in the weights (* a key frequency)
      const freqs = F.norms[0].map((_, j) => `${j + 1}${F.key.includes(j + 1) ? "*" : ""}`);
      const cells = F.norms.map(r => r.map(v => ({v, label: "", tip: v.toFixed(2)})));  // too narrow for text
      maps.push(heatmap(cells.reverse(), F.rows.slice().reverse(), freqs,
        {title: "Fourier norm per frequency (* key frequency)", rowTitle: "weights", cell: 20}));
    }
    put("gsx-heat", ...maps);
    drawCircuit();
  }

  function drawCircuit() {
    if (!tl || !tl.nodes.length) return;
    const ck = tl.checkpoints[S.ck];
    const k = tl.sizes[S.size], edges = new Set(ck.circuits[S.size]);
    $("gsx-size").value = S.size;
    $("gsx-faith").textContent = `${k} strongest edges (${edges.size} on a path to the logits): ` +
      `faithfulness ${fmt(ck.faithfulness[S.size])} under mean ablation at step ${ck.step}`;
    put("gsx-graph", graph(tl, POS, edges, ck.scores, {
      edge: tip => { $("gsx-hover").textContent = tip; },
      node: n => { S.node = n; drawNode(); },
    }));
    drawNode();
  }

  // ------------------------------------------------------------------------ node panel
  function drawNode() {
    const n = S.node;
    if (!n) { put("gsx-node", para("Click a node: its attention pattern, lens readout and features.", "gsx-note")); return; }
    const run = model.run(S.query);
    const state = n.kind === "embed" ? 0 : n.kind === "logits" ? L : n.layer + 1;
    const parts = [para(`${n.name}: ${n.kind} at ${POS[n.pos]} (${V[S.query[n.pos]]})`, "gsx-h")];
    if (tl) {
      const ck = tl.checkpoints[S.ck], present = new Set(ck.circuits[S.size]);
      const idx = tl.nodes.findIndex(m => m.name === n.name);
      const mine = tl.edges.map((e, i) => [e, i]).filter(([e, i]) => present.has(i) && (e[0] === idx || e[1] === idx));
      parts.push(para(`${mine.length} circuit edges at step ${ck.step}; summed score ` +
        mine.reduce((a, [, i]) => a + ck.scores[i], 0).toPrecision(3)));
    }
    if (n.kind === "head") {
      const pat = run.patterns[n.layer][n.head];
      const labels = S.query.map((t, p) => `${POS[p]} ${V[t]}`);
      parts.push(heatmap(pat.slice().reverse(), labels.slice().reverse(), labels,
        {title: `attention of ${n.name.split("@")[0]} (query row, key column)`, rowTitle: "query", cell: 70}));
    }
    const top = topTokens(model.readout(run.resid[state][n.pos]), 5);
    parts.push(para(`lens after ${n.kind === "embed" ? "the embedding" : n.kind === "logits" ? "the last block" : "block " + n.layer}` +
      ` at ${POS[n.pos]}:`), listing(top.map(t => [tok(t.id), fmt(t.p)])));
    const feats = (data.features || {})[n.name];
    if (feats && feats.length) parts.push(para("top features", "gsx-h"), listing(feats.map(f => [String(f.label), fmt(f.value)])));
    put("gsx-node", ...parts);
  }

  // -------------------------------------------------------------------------- queries
  function querySelects(container, ids, onChange) {
    const box = $(container);
    box.replaceChildren();
    data.queries.choices.forEach((choices, p) => {
      const lab = document.createElement("label");
      lab.textContent = POS[p] + " ";
      const sel = document.createElement("select");
      sel.dataset.pos = p;
      choices.forEach(id => {
        const o = document.createElement("option");
        o.value = id;
        o.textContent = V[id];
        sel.appendChild(o);
      });
      sel.value = ids[p];
      sel.addEventListener("change", () => onChange(p, Number(sel.value)));
      lab.appendChild(sel);
      box.appendChild(lab);
    });
  }

  function known(ids) {
    return data.queries.known[ids.join(",")];
  }

  function drawQuery() {
    const run = model.run(S.query), top = topTokens(run.logits, 5), best = top[0];
    const truth = known(S.query);
    const facts = [["model's answer", `${tok(best.id)} (p = ${fmt(best.p)})`],
      ["known answer", truth ? `${tok(truth[0])} (${truth[1]})` : "not in the dataset"]];
    put("gsx-answer", listing(facts), para("top 5: " + top.map(t => `${tok(t.id)} ${fmt(t.p)}`).join(", "), "gsx-small"));
    $("gsx-answer").dataset.answer = best.id;
    $("gsx-answer").dataset.prob = best.p;
    const grid = run.resid.map(row => row.map(x => {
      const t = topTokens(model.readout(x), 1)[0], pa = softmax(model.readout(x))[best.id];
      return {v: t.p, label: tok(t.id), tip: `top-1 ${tok(t.id)} p = ${fmt(t.p)}; final answer ${tok(best.id)} p = ${fmt(pa)}`};
    }));
    put("gsx-lens", heatmap(grid, STATES, S.query.map((t, p) => `${POS[p]} ${tok(t)}`),
      {title: "logit lens of this query: top-1 token per state (colour: its probability)", rowTitle: "state", cell: 86}));
    drawPatch();
    drawNode();
  }

  function drawPatch() {
    const clean = model.run(S.query), other = model.run(S.other);
    const a = topTokens(clean.logits, 1)[0].id, b = topTokens(other.logits, 1)[0].id;
    const grid = clean.resid.map((row, l) => row.map((_, p) => {
      const r = model.run(S.query, {state: l, pos: p, vec: other.resid[l][p]});
      const pr = softmax(r.logits), t = topTokens(r.logits, 1)[0];
      return {v: pr[b], label: tok(t.id), tip: `top-1 ${tok(t.id)}; P(${tok(a)}) = ${fmt(pr[a])}, P(${tok(b)}) = ${fmt(pr[b])}`,
        top: t.id, pa: pr[a], pb: pr[b]};
    }));
    S.patchGrid = grid;
    const svgEl = heatmap(grid, STATES, POS, {title: `patched answer per state (colour: P(${tok(b)}), the second query's answer)`,
      rowTitle: "state", cell: 86});
    svgEl.querySelectorAll(".gsx-cell").forEach(g => g.addEventListener("click", () => {
      S.cell = [Number(g.dataset.row), Number(g.dataset.col)];
      drawPatchInfo();
    }));
    put("gsx-patch", svgEl);
    drawPatchInfo();
  }

  function drawPatchInfo() {
    if (!S.cell) { put("gsx-patchinfo", para("Click a cell: the run of the first query with that state from the second.", "gsx-note")); return; }
    const [l, p] = S.cell, c = S.patchGrid[l][p];
    const clean = topTokens(model.run(S.query).logits, 1)[0].id, other = topTokens(model.run(S.other).logits, 1)[0].id;
    put("gsx-patchinfo", para(`state ${l} at ${POS[p]} from the second query`, "gsx-h"),
      listing([["patched answer", tok(c.top)], [`P(${tok(clean)}) first answer`, fmt(c.pa)],
        [`P(${tok(other)}) second answer`, fmt(c.pb)]]));
  }

  // ---------------------------------------------------------------------------- setup
  function setCheckpoint(i) { S.ck = Math.max(0, Math.min(tl.checkpoints.length - 1, i)); drawCheckpoint(); }
  function setSize(i) { S.size = Math.max(0, Math.min(tl.sizes.length - 1, i)); drawCircuit(); }
  function setQuery(ids) { S.query = ids.slice(); querySelects("gsx-query", S.query, (p, v) => { S.query[p] = v; drawQuery(); }); drawQuery(); }
  function setOther(ids) { S.other = ids.slice(); querySelects("gsx-other", S.other, (p, v) => { S.other[p] = v; drawPatch(); }); drawPatch(); }

  try {
    const q = data.queries;
    if (!q.default) throw new Error("no prompts of the task's length to query");
    S.query = q.default.slice();
    // the second query: the first token swapped, the rest kept where the dataset has such a prompt
    const prompts = Object.keys(q.known).map(k => k.split(",").map(Number));
    const alt = prompts.find(ids => ids[0] !== S.query[0] && ids.slice(1).every((t, p) => t === S.query[p + 1]))
      || prompts.find(ids => ids[0] !== S.query[0]) || S.query;
    if (tl) {
      const target = data.circuit_size || tl.sizes[Math.floor(tl.sizes.length / 2)];
      S.size = tl.sizes.reduce((best, k, i) => (Math.abs(k - target) < Math.abs(tl.sizes[best] - target) ? i : best), 0);
      $("gsx-ckpt").max = tl.checkpoints.length - 1;
      $("gsx-size").max = tl.sizes.length - 1;
      $("gsx-ckpt").addEventListener("input", e => setCheckpoint(Number(e.target.value)));
      $("gsx-size").addEventListener("input", e => setSize(Number(e.target.value)));
    } else {
      root.querySelectorAll(".gsx-timeline").forEach(el => { el.hidden = true; });
    }
    S.other = alt.slice();
    querySelects("gsx-other", S.other, (p, v) => { S.other[p] = v; drawPatch(); });
    setQuery(S.query);
    drawCheckpoint();
    root.dataset.ready = "1";
  } catch (err) {
    root.prepend(para(`explorer failed: ${err.message}`, "gsx-err"));
    console.error(err);
  }
  window.gsExplorer = {data, model, state: S, setCheckpoint, setSize, setQuery, setOther};
})();
