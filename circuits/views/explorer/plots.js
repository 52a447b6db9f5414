/* grokscope explorer: SVG drawing (heatmaps, line charts, the circuit graph). Text is always set as
 * textContent, never parsed as markup, so token names stay text. */
"use strict";
(function (root) {
  const NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, parent) {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    if (parent) parent.appendChild(el);
    return el;
  }

  function text(parent, x, y, str, attrs) {
    const t = svg("text", Object.assign({x, y, "font-size": 11}, attrs || {}), parent);
    t.textContent = str;
    return t;
  }

  function title(el, str) {
    svg("title", {}, el).textContent = str;
  }

  function shade(v) {  // 0 -> white, 1 -> dark blue
    const c = Math.max(0, Math.min(1, v == null || Number.isNaN(v) ? 0 : v));
    const mix = (a, b) => Math.round(a + (b - a) * c);
    return `rgb(${mix(255, 8)},${mix(255, 69)},${mix(255, 148)})`;
  }

  /* matrix: rows x cols numbers (or {v, label}); returns the svg. */
  function heatmap(matrix, rowLabels, colLabels, opts) {
    const o = Object.assign({cell: 44, title: "", rowTitle: ""}, opts || {});
    const left = Math.max(40, 8 + 6.6 * Math.max(...rowLabels.map(r => String(r).length))), top = o.title ? 22 : 6;
    const w = Math.max(left + colLabels.length * o.cell + 10, 8 + 6.4 * o.title.length);
    const h = top + rowLabels.length * 26 + 34;
    const s = svg("svg", {class: "gsx-heat", width: w, height: h, viewBox: `0 0 ${w} ${h}`});
    if (o.title) text(s, 4, 14, o.title, {"font-weight": 600});
    const n = rowLabels.length;
    matrix.forEach((row, i) => row.forEach((cell, j) => {
      const v = typeof cell === "object" && cell !== null ? cell.v : cell;
      const y = top + (n - 1 - i) * 26, x = left + j * o.cell;  // state 0 at the bottom
      const g = svg("g", {class: "gsx-cell", "data-row": i, "data-col": j}, s);
      svg("rect", {x, y, width: o.cell - 2, height: 24, fill: shade(v), stroke: "#ddd"}, g);
      const label = typeof cell === "object" && cell !== null ? cell.label : (v == null ? "-" : v.toFixed(2));
      text(g, x + (o.cell - 2) / 2, y + 16, label, {"text-anchor": "middle", fill: v > 0.55 ? "#fff" : "#222",
        "font-size": o.cell < 60 ? 10 : 11});
      title(g, `${o.rowTitle} ${rowLabels[i]}, ${colLabels[j]}: ${typeof cell === "object" && cell ? cell.tip : label}`);
    }));
    rowLabels.forEach((r, i) => text(s, left - 6, top + (n - 1 - i) * 26 + 16, r, {"text-anchor": "end", fill: "#555"}));
    colLabels.forEach((c, j) => text(s, left + j * o.cell + (o.cell - 2) / 2, top + n * 26 + 14, c,
      {"text-anchor": "middle", "font-weight": 600}));
    return s;
  }

  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

  /* steps, series {name: values}; marker: a step to draw a vertical line at. */
  function lineChart(steps, series, marker, opts) {
    const o = Object.assign({width: 560, height: 240}, opts || {});
    const L = 46, R = 130, T = 12, B = 30, W = o.width - L - R, H = o.height - T - B;
    const s = svg("svg", {class: "gsx-chart", width: o.width, height: o.height});
    const lo = Math.min(...steps), hi = Math.max(...steps);
    const logX = lo > 0 && hi / lo > 20;
    const fx = v => L + W * (logX ? Math.log(v / lo) / Math.log(hi / lo) : (v - lo) / ((hi - lo) || 1));
    const fy = v => T + H * (1 - v);
    svg("rect", {x: L, y: T, width: W, height: H, fill: "#fff", stroke: "#ccc"}, s);
    [0, 0.5, 1].forEach(v => text(s, L - 6, fy(v) + 4, v.toFixed(1), {"text-anchor": "end", fill: "#666"}));
    text(s, L, o.height - 8, `step ${lo}`, {fill: "#666"});
    text(s, L + W, o.height - 8, `${hi}`, {"text-anchor": "end", fill: "#666"});
    Object.entries(series).forEach(([name, vals], k) => {
      const pts = steps.map((x, i) => (vals[i] == null ? null : `${fx(x).toFixed(1)},${fy(vals[i]).toFixed(1)}`));
      const d = pts.reduce((acc, p, i) => (p == null ? acc : acc + (acc && pts[i - 1] != null ? " L" : " M") + p), "");
      const path = svg("path", {d, fill: "none", stroke: PALETTE[k % PALETTE.length], "stroke-width": 1.8}, s);
      title(path, name);
      svg("rect", {x: L + W + 10, y: T + 4 + 16 * k, width: 10, height: 10, fill: PALETTE[k % PALETTE.length]}, s);
      text(s, L + W + 24, T + 13 + 16 * k, name);
    });
    if (marker != null) {
      const x = fx(Math.max(lo, marker));
      svg("line", {class: "gsx-marker", x1: x, x2: x, y1: T, y2: T + H, stroke: "#111", "stroke-dasharray": "4,3"}, s);
      const right = x > L + W / 2;
      text(s, right ? x - 4 : x + 4, T + H - 6, `step ${marker}`, {fill: "#111", "text-anchor": right ? "end" : "start"});
    }
    return s;
  }

  /* The circuit graph: nodes [{name, kind, pos, layer, head}], edges [[src, dst, channel]].
   * present: Set of edge indices to draw; scores: per edge; returns {svg, nodeEls}. */
  function graph(tl, labels, present, scores, handlers) {
    const L = tl.n_layers, H = tl.n_heads, P = labels.length;
    const colW = Math.max(150, 34 * H + 40), rowH = 46, left = 60, top = 20;
    const height = top + (2 * L + 2) * rowH + 40, width = left + P * colW + 20;
    const xy = n => {
      const cx = left + n.pos * colW + colW / 2;
      if (n.kind === "embed") return [cx, top + (2 * L + 1) * rowH + rowH / 2];
      if (n.kind === "logits") return [cx, top + rowH / 2];
      const level = 2 * n.layer + (n.kind === "mlp" ? 1 : 0), y = top + (2 * L - level) * rowH + rowH / 2;
      return n.kind === "head" ? [cx + (n.head - (H - 1) / 2) * 32, y] : [cx, y];
    };
    const s = svg("svg", {class: "gsx-graph", width, height, viewBox: `0 0 ${width} ${height}`});
    for (let p = 0; p < P; p++) {
      svg("rect", {x: left + p * colW + 4, y: top - 4, width: colW - 8, height: (2 * L + 2) * rowH + 8,
        fill: p % 2 ? "#f6f8fb" : "#fbfbfb", rx: 6}, s);
      text(s, left + p * colW + colW / 2, height - 14, labels[p], {"text-anchor": "middle", "font-weight": 600});
    }
    for (let l = 0; l < L; l++) {
      text(s, left - 8, top + (2 * L - 2 * l) * rowH + rowH / 2 + 4, `attn ${l}`, {"text-anchor": "end", fill: "#666", "font-size": 10});
      text(s, left - 8, top + (2 * L - 2 * l - 1) * rowH + rowH / 2 + 4, `mlp ${l}`, {"text-anchor": "end", fill: "#666", "font-size": 10});
    }
    const idx = [...present];
    const biggest = Math.max(1e-12, ...idx.map(i => Math.abs(scores[i])));
    const used = new Set();
    idx.sort((a, b) => Math.abs(scores[a]) - Math.abs(scores[b])).forEach(i => {
      const [a, b, ch] = tl.edges[i], na = tl.nodes[a], nb = tl.nodes[b];
      used.add(a); used.add(b);
      const [x1, y1] = xy(na), [x2, y2] = xy(nb), bend = ch === "k" || ch === "v" ? 18 : 0;
      const path = svg("path", {class: "gsx-edge", "data-edge": i,
        d: `M${x1.toFixed(1)},${y1.toFixed(1)} Q${((x1 + x2) / 2 + bend).toFixed(1)},${((y1 + y2) / 2).toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}`,
        fill: "none", stroke: scores[i] < 0 ? "#2166ac" : "#b2182b", "stroke-opacity": 0.6,
        "stroke-width": (0.8 + 4 * Math.abs(scores[i]) / biggest).toFixed(2)}, s);
      const tip = `${na.name} -> ${nb.name} (${ch}): score ${scores[i].toPrecision(3)}`;
      title(path, tip);
      path.addEventListener("mouseenter", () => handlers.edge(tip));
    });
    tl.nodes.forEach((n, i) => {
      const [x, y] = xy(n), on = used.has(i);
      const g = svg("g", {class: "gsx-node" + (on ? " gsx-on" : ""), "data-node": n.name, tabindex: 0}, s);
      const fill = !on ? "#fff" : n.kind === "mlp" ? "#fde0c5" : n.kind === "head" ? "#d1e5f0" : "#e0e0e0";
      if (n.kind === "head") svg("circle", {cx: x, cy: y, r: 13, fill, stroke: on ? "#333" : "#ccc"}, g);
      else svg("rect", {x: x - 22, y: y - 12, width: 44, height: 24, rx: 4, fill, stroke: on ? "#333" : "#ccc"}, g);
      const short = {embed: "emb", logits: "out", mlp: `m${n.layer}`, head: `${n.layer}.${n.head}`}[n.kind];
      text(g, x, y + 4, short, {"text-anchor": "middle", "font-size": 9.5, fill: on ? "#111" : "#bbb"});
      title(g, n.name);
      g.addEventListener("click", () => handlers.node(n));
    });
    return s;
  }

  root.gsPlots = {heatmap, lineChart, graph, shade, svg, text};
})(typeof window !== "undefined" ? window : globalThis);
