"""The JavaScript of `rnnlab export --format html`: the model's step and `rnnlab sample`'s rule, in the browser.

The page holds two inline data elements that html.py fills: #model (JSON: the cell, sizes, vocabulary, the tensor
manifest [name, shape, byte offset], the model card) and #weights (every parameter, little-endian float32 or
float16, concatenated and base64-encoded). The script decodes the weights once, then steps the model one symbol at a
time in float64 arithmetic over float32 weights, streaming each new symbol into #output.

CELLS is the table of cells the page implements, keyed by name, in PyTorch's gate order, built by cells_js() from
rnnlab.cells and each cell's NumPy file (the cell is a unit: its JS_STEP sits beside its NumPy step). Each entry
gives G (weight_ih has G*H rows), the state names, whether the cell has a recurrent weight (weight_hh, bias_hh),
and step(gx, gh, s, H), which updates the layer's state arrays s in place from gx = W_ih x + b_ih (G*H) and
gh = W_hh h + b_hh (G*H; null without a recurrent weight). Export refuses a cell without JS_STEP in one line.

`pick` is rnnlab.sample.pick for one row: argmax (ties: the lowest id) when argmax is set or the temperature is 0,
else softmax(logits / T) cut to the top-k logits (ties with the k-th kept) and to the smallest set whose mass
reaches top-p, sampled by inverse CDF with one uniform draw. The draws come from a seeded generator of the page's
own (mulberry32), not NumPy's PCG64: seeded samples differ from rnnlab sample's; argmax text is the same.
"""

def cells_js() -> tuple:
    """(the names of the cells the page implements, the JavaScript object literal of their table): every row of
    rnnlab.cells whose NumPy file has a JS_STEP, with G, its state names and whether it has a recurrent weight."""
    import importlib
    from .. import cells
    names, parts = [], []
    for name, row in cells.CELLS.items():
        step = getattr(importlib.import_module(f"rnnlab.engines.numpy.{name}"), "JS_STEP", None)
        if step:
            names.append(name)
            parts.append(f'{name}: {{ G: {row.gates}, state: {list(row.state)!r}, '
                         f'hh: {str("weight_hh" in row.params).lower()},\n  step: {step.strip()} }}')
    return tuple(names), "{\n" + ",\n".join(parts) + "}"

SCRIPT = r"""
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("model").textContent);
  const $ = (id) => document.getElementById(id);
  const sig = (a) => 1 / (1 + Math.exp(-a));

  const CELLS = %CELLS%;

  function bytesOf(b64) {
    if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(b64);
    const s = atob(b64), a = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
    return a;
  }

  function halfTable() {                                 // every binary16 bit pattern -> its value
    const t = new Float32Array(65536);
    for (let u = 0; u < 65536; u++) {
      const sign = u & 0x8000 ? -1 : 1, e = (u >> 10) & 31, m = u & 1023;
      t[u] = e === 0 ? sign * m * 2 ** -24 : e === 31 ? (m ? NaN : sign * Infinity)
        : sign * (1 + m / 1024) * 2 ** (e - 15);
    }
    return t;
  }

  function tensors() {                                   // name -> Float32Array, row-major as in the checkpoint
    const raw = bytesOf($("weights").textContent.trim()), W = {}, half = D.dtype === "float16" ? halfTable() : null;
    for (const [name, shape, offset] of D.tensors) {
      const n = shape.reduce((a, b) => a * b, 1);
      if (!half) { W[name] = new Float32Array(raw.buffer, raw.byteOffset + offset, n); continue; }
      const u = new Uint16Array(raw.buffer, raw.byteOffset + offset, n), t = new Float32Array(n);
      for (let i = 0; i < n; i++) t[i] = half[u[i]];
      W[name] = t;
    }
    return W;
  }

  function matvec(w, rows, cols, x, b, out) {            // out = w x + b; w (rows, cols) row-major
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, c = 0;
      for (; c + 3 < cols; c += 4) {
        a0 += w[o + c] * x[c]; a1 += w[o + c + 1] * x[c + 1]; a2 += w[o + c + 2] * x[c + 2]; a3 += w[o + c + 3] * x[c + 3];
      }
      for (; c < cols; c++) a0 += w[o + c] * x[c];
      out[r] = (a0 + a1) + (a2 + a3) + b[r];
    }
  }

  function makeModel(W) {                                // step(id, state) -> logits (V,), state updated in place
    const cell = CELLS[D.cell], H = D.H, V = D.V, E = D.E, G = cell.G;
    const layers = [];
    for (let k = 0; k < D.L; k++) layers.push({
      wih: W["rnn.weight_ih_l" + k], bih: W["rnn.bias_ih_l" + k], whh: W["rnn.weight_hh_l" + k] || null,
      bhh: W["rnn.bias_hh_l" + k] || null, cols: k === 0 ? (E || V) : H });
    const gx = new Float64Array(G * H), gh = cell.hh ? new Float64Array(G * H) : null;
    const x = new Float64Array(E), logits = new Float64Array(V);
    const zero = () => layers.map(() => cell.state.map(() => new Float64Array(H)));
    function step(id, state) {
      let input = x;
      if (E) x.set(W["encoder.weight"].subarray(id * E, (id + 1) * E));
      layers.forEach(function (l, k) {
        if (k === 0 && !E) for (let r = 0; r < G * H; r++) gx[r] = l.wih[r * V + id] + l.bih[r];   // one-hot x
        else matvec(l.wih, G * H, l.cols, input, l.bih, gx);
        if (gh) matvec(l.whh, G * H, H, state[k][0], l.bhh, gh);
        cell.step(gx, gh, state[k], H);
        input = state[k][0];
      });
      matvec(W["decoder.weight"], V, H, input, W["decoder.bias"], logits);
      return logits;
    }
    return { step, zero };
  }

  function mulberry32(seed) {                            // uniform doubles in [0, 1), 53 bits from two draws
    let a = (seed >>> 0) ^ Math.floor(seed / 4294967296);
    const next = () => {
      a = (a + 0x6D2B79F5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return (t ^ (t >>> 14)) >>> 0;
    };
    return () => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
  }

  function pick(logits, o, rand) {                       // rnnlab.sample.pick for one row
    const V = logits.length;
    if (o.argmax || o.temperature === 0) {
      let best = 0;
      for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
      return best;
    }
    const z = Array.from(logits, (v) => v / o.temperature);
    if (o.top_k && o.top_k < V) {
      const kth = z.slice().sort((a, b) => b - a)[o.top_k - 1];
      for (let i = 0; i < V; i++) if (z[i] < kth) z[i] = -Infinity;
    }
    const m = z.reduce((a, b) => Math.max(a, b), -Infinity);
    let p = z.map((v) => Math.exp(v - m)), sum = p.reduce((a, b) => a + b, 0);
    p = p.map((v) => v / sum);
    if (o.top_p < 1) {
      const order = p.map((v, i) => i).sort((a, b) => p[b] - p[a] || a - b);
      let before = 0;
      for (const i of order) { const v = p[i]; if (before >= o.top_p) p[i] = 0; before += v; }
      sum = p.reduce((a, b) => a + b, 0);
      p = p.map((v) => v / sum);
    }
    const cdf = [];
    p.reduce((a, v, i) => (cdf[i] = a + v), 0);
    const u = rand() * cdf[V - 1];
    let n = 0;
    for (const c of cdf) if (c <= u) n++;
    return Math.min(n, V - 1);
  }
""" + r"""
  const ids = new Map(D.symbols.map((s, i) => [s, i]));
  function encodePrime(prime) {                          // rnnlab.sample.encode_prime (unknown = error)
    const syms = D.encoding === "bytes" ? Array.from(new TextEncoder().encode(prime)) : Array.from(prime);
    const bad = [...new Set(syms.filter((s) => !ids.has(s)))];
    if (bad.length) throw new Error("the prime has " + bad.length + " symbol" + (bad.length > 1 ? "s" : "") +
      " not in the vocabulary: " + bad.slice(0, 20).map((s) => JSON.stringify(s)).join(", ") + "; remove them");
    return syms.map((s) => ids.get(s));
  }

  function settings() {                                  // the controls, checked as rnnlab sample checks its flags
    const num = (id) => Number($(id).value);
    const o = { prime: $("prime").value, length: num("length"), temperature: num("temperature"),
                top_k: num("top_k"), top_p: num("top_p"), seed: num("seed"), argmax: $("argmax").checked };
    const whole = (v) => Number.isInteger(v) && v >= 0;
    if (!whole(o.length)) throw new Error("length must be a whole number >= 0");
    if (!(o.temperature >= 0)) throw new Error("temperature must be >= 0 (0 = argmax)");
    if (!whole(o.top_k) || !(o.top_p > 0 && o.top_p <= 1)) throw new Error("top-k must be >= 0 and top-p in (0, 1]");
    if (!whole(o.seed)) throw new Error("seed must be a whole number >= 0");
    return o;
  }

  let model = null, run = 0;
  const stats = { load_ms: null, first_ms: null, chars: 0, chars_per_s: null };
  const tick = () => new Promise((r) => { const c = new MessageChannel(); c.port1.onmessage = r; c.port2.postMessage(0); });

  async function generate() {                            // rnnlab.sample.generate for one sample, streamed
    const me = ++run, out = $("output"), node = document.createTextNode("");
    $("error").hidden = true;
    let o, prime;
    try { o = settings(); prime = encodePrime(o.prime); } catch (e) { return fail(e.message); }
    document.body.dataset.state = "running";
    out.textContent = "";
    out.appendChild(node);
    const dec = D.encoding === "bytes" ? new TextDecoder("utf-8") : null;
    const emit = (id) => node.appendData(dec ? dec.decode(new Uint8Array([D.symbols[id]]), { stream: true }) : D.symbols[id]);
    const state = model.zero(), rand = mulberry32(o.seed);
    let logits = null;
    for (const id of prime.length ? prime : [D.start]) logits = model.step(id, state);
    prime.forEach(emit);
    const t0 = performance.now();
    let slice = t0;
    for (let n = 0; n < o.length; n++) {
      const id = pick(logits, o, rand);
      emit(id);
      if (n === 0) stats.first_ms = performance.now();
      logits = model.step(id, state);
      if (performance.now() - slice > 25) {               // let the page paint the text so far
        show(n + 1, performance.now() - t0);
        await tick();
        if (me !== run) return;                            // Stop, or a new Generate
        slice = performance.now();
      }
    }
    if (dec) node.appendData(dec.decode());
    node.appendData("\n");                                 // as rnnlab sample ends its output
    show(o.length, performance.now() - t0);
    document.body.dataset.state = "done";
  }

  function show(n, ms) {
    stats.chars = n;
    stats.chars_per_s = ms > 0 ? n / (ms / 1000) : null;
    $("speed").textContent = n + " characters" + (ms > 0 ? ", " + Math.round(stats.chars_per_s) + " chars/s" : "") +
      (stats.first_ms !== null ? ", first after " + Math.round(stats.first_ms) + " ms from page load" : "");
  }

  function fail(message) {
    $("error").textContent = "error: " + message;
    $("error").hidden = false;
    document.body.dataset.state = "error";
  }

  function card() {
    const rows = $("card");
    for (const [k, v] of D.card) {
      const tr = document.createElement("tr"), th = document.createElement("th"), td = document.createElement("td");
      th.textContent = k;
      td.textContent = v;
      tr.append(th, td);
      rows.appendChild(tr);
    }
  }

  function fromQuery() {                                 // ?prime=&length=&argmax=1&temperature=&top_k=&top_p=&seed=
    const q = new URLSearchParams(location.search);
    for (const k of ["prime", "length", "temperature", "top_k", "top_p", "seed"]) if (q.has(k)) $(k).value = q.get(k);
    if (q.has("argmax")) $("argmax").checked = q.get("argmax") === "1";
    return q.get("autorun") === "1";
  }

  card();
  const autorun = fromQuery();
  const cell = CELLS[D.cell];
  if (!cell || cell.G !== D.gates || cell.state.join() !== D.state.join() || cell.hh !== D.params.includes("weight_hh"))
    return fail("this page does not implement the cell '" + D.cell + "' as the model defines it");
  model = makeModel(tensors());
  stats.load_ms = performance.now();
  window.rnnlab = { model, stats, pick, generate, cells: Object.keys(CELLS) };
  $("go").addEventListener("click", generate);
  $("stop").addEventListener("click", () => { run++; document.body.dataset.state = "stopped"; });
  document.body.dataset.state = "ready";
  if (autorun) generate();
})();
"""
