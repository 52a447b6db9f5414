/* grokscope explorer: the model's forward pass in plain JavaScript (GPT-2, float16 weights).
 *
 * Weights arrive as base64 float16 (row-major, Hugging Face Conv1D layout: x @ W + b, W is in x out)
 * and are widened to Float64Array; every activation is computed in double precision.
 * resid[l][p] is the residual stream before block l (l = n_layers: after the last block);
 * the logit lens reads any state through the final LayerNorm and the unembedding.
 */
"use strict";
(function (root) {
  function halfToFloat(h) {
    const s = (h & 0x8000) ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
    if (e === 0) return s * Math.pow(2, -14) * (f / 1024);
    if (e === 31) return f ? NaN : s * Infinity;
    return s * Math.pow(2, e - 15) * (1 + f / 1024);
  }

  function decode(t) {
    const bin = atob(t.b64), n = bin.length / 2, out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = halfToFloat(bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8));
    out.shape = t.shape;
    return out;
  }

  function erf(x) {  // series for |x| < 3, continued fraction of erfc beyond: ~1e-15 relative
    const a = Math.abs(x);
    if (a < 3) {
      let term = a, sum = a;
      for (let k = 1; k < 80; k++) {
        term *= -a * a / k;
        const add = term / (2 * k + 1);
        sum += add;
        if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
      }
      return Math.sign(x) * 2 / Math.sqrt(Math.PI) * sum;
    }
    let f = 0;
    for (let k = 60; k >= 1; k--) f = (k / 2) / (a + f);
    return Math.sign(x) * (1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f));
  }

  const ACT = {
    gelu_new: x => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
    gelu: x => 0.5 * x * (1 + erf(x / Math.SQRT2)),
    relu: x => Math.max(0, x),
  };

  function layerNorm(x, w, b, eps) {  // the identity where the model has no LayerNorm (no weight)
    if (!w) return x;
    const n = x.length;
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[i];
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[i] - mean) * (x[i] - mean);
    const inv = 1 / Math.sqrt(v / n + eps), out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = (x[i] - mean) * inv * w[i] + b[i];
    return out;
  }

  function linear(x, W, b) {  // x (in) @ W (in x out) + b (out)
    const nIn = W.shape[0], nOut = W.shape[1], out = Float64Array.from(b);
    for (let i = 0; i < nIn; i++) {
      const xi = x[i];
      if (xi === 0) continue;
      const row = i * nOut;
      for (let j = 0; j < nOut; j++) out[j] += xi * W[row + j];
    }
    return out;
  }

  class Model {
    constructor(spec) {
      this.cfg = spec.config;
      this.wte = decode(spec.wte);
      this.wpe = decode(spec.wpe);
      this.lnf = spec.ln_f ? {w: decode(spec.ln_f.weight), b: decode(spec.ln_f.bias)} : {w: null, b: null};
      this.unembed = spec.unembed ? decode(spec.unembed) : this.wte;
      this.blocks = spec.blocks.map(blk => {
        const o = {};
        for (const k of Object.keys(blk)) o[k] = decode(blk[k]);
        return o;
      });
      this.act = ACT[this.cfg.activation];
    }

    embed(ids) {
      const d = this.cfg.d_model;
      return ids.map((t, p) => {
        const v = new Float64Array(d);
        for (let i = 0; i < d; i++) v[i] = this.wte[t * d + i] + this.wpe[p * d + i];
        return v;
      });
    }

    block(l, xs, patterns) {
      const B = this.blocks[l], c = this.cfg, d = c.d_model, H = c.n_heads, dh = d / H, P = xs.length;
      const qkv = xs.map(x => linear(layerNorm(x, B["ln_1.weight"], B["ln_1.bias"], c.eps), B["attn.c_attn.weight"], B["attn.c_attn.bias"]));
      const z = xs.map(() => new Float64Array(d));
      for (let h = 0; h < H; h++) {
        const pat = [];
        for (let q = 0; q < P; q++) {
          const s = new Float64Array(q + 1);
          let mx = -Infinity;
          for (let k = 0; k <= q; k++) {
            let dot = 0;
            for (let i = 0; i < dh; i++) dot += qkv[q][h * dh + i] * qkv[k][d + h * dh + i];
            s[k] = dot / Math.sqrt(dh);
            mx = Math.max(mx, s[k]);
          }
          let sum = 0;
          for (let k = 0; k <= q; k++) { s[k] = Math.exp(s[k] - mx); sum += s[k]; }
          const row = new Array(P).fill(0);
          for (let k = 0; k <= q; k++) {
            row[k] = s[k] / sum;
            for (let i = 0; i < dh; i++) z[q][h * dh + i] += row[k] * qkv[k][2 * d + h * dh + i];
          }
          pat.push(row);
        }
        if (patterns) patterns.push(pat);
      }
      return xs.map((x, p) => {
        const mid = linear(z[p], B["attn.c_proj.weight"], B["attn.c_proj.bias"]);
        for (let i = 0; i < d; i++) mid[i] += x[i];
        const hidden = linear(layerNorm(mid, B["ln_2.weight"], B["ln_2.bias"], c.eps), B["mlp.c_fc.weight"], B["mlp.c_fc.bias"]);
        for (let j = 0; j < hidden.length; j++) hidden[j] = this.act(hidden[j]);
        const out = linear(hidden, B["mlp.c_proj.weight"], B["mlp.c_proj.bias"]);
        for (let i = 0; i < d; i++) out[i] += mid[i];
        return out;
      });
    }

    /* ids: token ids. patch: {state, pos, vec} replaces resid[state][pos] before the blocks above run.
     * Returns {resid, patterns (layer -> head -> query -> key), logits (at the last position)}. */
    run(ids, patch) {
      if (ids.length > this.cfg.n_ctx) throw new Error(`prompt of ${ids.length} tokens; the model reads ${this.cfg.n_ctx}`);
      let xs = this.embed(ids);
      const resid = [], patterns = [];
      for (let l = 0; l <= this.cfg.n_layers; l++) {
        if (patch && patch.state === l) xs = xs.map((x, p) => (p === patch.pos ? Float64Array.from(patch.vec) : x));
        resid.push(xs);
        if (l < this.cfg.n_layers) {
          const pats = [];
          xs = this.block(l, xs, pats);
          patterns.push(pats);
        }
      }
      return {resid, patterns, logits: this.readout(resid[this.cfg.n_layers][ids.length - 1])};
    }

    readout(x) {  // final LayerNorm and unembedding: the logits (or the lens) of one state
      const d = this.cfg.d_model, V = this.cfg.d_vocab, y = layerNorm(x, this.lnf.w, this.lnf.b, this.cfg.eps);
      const out = new Float64Array(V);
      for (let t = 0; t < V; t++) {
        let s = 0;
        for (let i = 0; i < d; i++) s += y[i] * this.unembed[t * d + i];
        out[t] = s;
      }
      return out;
    }

    logitsAll(ids) {  // logits at every position (for checks against torch)
      const r = this.run(ids);
      return r.resid[this.cfg.n_layers].map(x => Array.from(this.readout(x)));
    }
  }

  function softmax(logits) {
    let mx = -Infinity;
    for (const v of logits) mx = Math.max(mx, v);
    let sum = 0;
    const out = Array.from(logits, v => { const e = Math.exp(v - mx); sum += e; return e; });
    return out.map(e => e / sum);
  }

  function topk(values, k) {
    return Array.from(values.keys()).sort((a, b) => values[b] - values[a]).slice(0, k);
  }

  root.gsModel = {Model, decode, halfToFloat, softmax, topk, erf};
})(typeof window !== "undefined" ? window : globalThis);
