"""The HTML/CSS/JS of `rnnlab viz`'s page, kept apart from the Python that fills it (viz.py).

viz.render replaces %TITLE% and %INFO% (HTML-escaped) and %DATA% (JSON with every '<' written as \\u003c, so the
text can never close the <script> element). The page needs no network: no external script, font or image, and the
favicon is an empty data: URL so the browser does not even ask for one. The text is put into the DOM with
textContent only, never innerHTML, so any characters in it are shown, not run.
"""

TEMPLATE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>%TITLE%</title>
<style>
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 16px 24px; color: #222; }
  h1 { font-size: 17px; margin: 0 0 2px; }
  .info { color: #666; font-size: 12px; margin-bottom: 10px; }
  #controls { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; }
  #controls select, #controls button { font: inherit; padding: 2px 6px; }
  #legend { display: inline-flex; align-items: center; gap: 4px; font-size: 12px; color: #555; }
  #legend i { display: inline-block; width: 120px; height: 12px; border: 1px solid #ccc;
              background: linear-gradient(to right, rgb(31,119,180), #fff, rgb(214,39,40)); }
  #unitinfo { font-size: 12px; color: #444; }
  table.features { border-collapse: collapse; margin: 6px 0 12px; font-size: 12px; }
  table.features td, table.features th { border-bottom: 1px solid #eee; padding: 3px 8px; text-align: left; }
  table.features button { font: 12px ui-monospace, monospace; margin: 1px 2px; cursor: pointer;
                          border: 1px solid #bbb; background: #f7f7f7; border-radius: 3px; }
  table.features button.on { background: #333; color: #fff; }
  #text { font: 14px/1.7 ui-monospace, "DejaVu Sans Mono", Menlo, monospace; white-space: pre-wrap;
          overflow-wrap: anywhere; border: 1px solid #ddd; padding: 10px; border-radius: 4px; }
  #text span.c { border-radius: 2px; }
  #text span.nl { color: #aaa; }
  #tip { position: fixed; pointer-events: none; background: #fff; border: 1px solid #888; border-radius: 4px;
         box-shadow: 0 2px 8px rgba(0,0,0,.2); padding: 6px 8px; font: 12px ui-monospace, monospace; z-index: 9; }
  #tip .bar { display: inline-block; height: 8px; background: #555; vertical-align: middle; margin-left: 6px; }
</style>
</head>
<body>
<h1>%TITLE%</h1>
<div class="info">%INFO%. Colour: the chosen unit's activation h<sub>t</sub>[u] after reading each character.
Hover a character for the model's top-5 predictions of the next one.</div>
<div id="controls">
  <label>unit <select id="unit"></select></label>
  <button id="prev" title="previous unit">&#9664;</button><button id="next" title="next unit">&#9654;</button>
  <span id="legend">-1 <i></i> +1</span>
  <span id="unitinfo"></span>
</div>
<table class="features"><thead><tr><th>feature</th><th>units most correlated with it (Pearson r)</th></tr></thead>
<tbody id="features"></tbody></table>
<div id="text"></div>
<div id="tip" hidden></div>
<script type="application/json" id="data">%DATA%</script>
<script>
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const T = D.chars.length, H = D.H;
  const raw = atob(D.acts);
  const A = new Int8Array(raw.length);                  // (T, H) row-major: A[t * H + u] = round(127 * h_t[u])
  for (let i = 0; i < raw.length; i++) A[i] = (raw.charCodeAt(i) << 24) >> 24;
  const names = { "\n": "\u21b5 newline", " ": "\u2423 space", "\t": "\u21e5 tab" };
  const disp = (ch) => names[ch] || ch;

  const box = document.getElementById("text"), frag = document.createDocumentFragment(), spans = [];
  D.chars.forEach(function (ch, t) {
    const s = document.createElement("span");
    s.className = ch === "\n" ? "c nl" : "c";
    s.dataset.t = t;
    s.textContent = ch === "\n" ? "\u21b5" : ch;
    frag.appendChild(s);
    spans.push(s);
    if (ch === "\n") frag.appendChild(document.createElement("br"));
  });
  box.appendChild(frag);

  const pick = document.getElementById("unit"), info = document.getElementById("unitinfo");
  for (let u = 0; u < H; u++) {
    const o = document.createElement("option");
    o.value = String(u);
    o.textContent = "unit " + u;
    pick.appendChild(o);
  }
  const featRows = document.getElementById("features"), buttons = [];
  Object.keys(D.features).forEach(function (name) {
    const tr = document.createElement("tr"), th = document.createElement("td"), td = document.createElement("td");
    th.textContent = name + " (" + D.features[name] + ")";
    if (D.top[name] === null) td.textContent = "constant in this text: no correlation";
    else D.top[name].forEach(function (pair) {
      const b = document.createElement("button");
      b.dataset.unit = pair[0];
      b.textContent = "unit " + pair[0] + " (r=" + (pair[1] >= 0 ? "+" : "") + pair[1].toFixed(2) + ")";
      b.addEventListener("click", function () { show(pair[0]); });
      buttons.push(b);
      td.appendChild(b);
    });
    tr.appendChild(th); tr.appendChild(td); featRows.appendChild(tr);
  });

  let unit = 0;
  function colour(a) {                                   // blue (-1) .. transparent (0) .. red (+1)
    const x = Math.min(1, Math.abs(a)).toFixed(3);
    return a >= 0 ? "rgba(214, 39, 40, " + x + ")" : "rgba(31, 119, 180, " + x + ")";
  }
  function show(u) {
    unit = ((Number(u) % H) + H) % H;
    for (let t = 0; t < T; t++) {
      const a = A[t * H + unit] / 127;
      spans[t].style.backgroundColor = colour(a);
      spans[t].style.color = Math.abs(a) > 0.65 ? "#fff" : "";
    }
    pick.value = String(unit);
    document.body.dataset.unit = String(unit);
    const parts = Object.keys(D.corr).map(function (k) {
      const r = D.corr[k];
      return k + " " + (r === null ? "n/a" : (r[unit] >= 0 ? "+" : "") + r[unit].toFixed(2));
    });
    info.textContent = "unit " + unit + ": r with " + parts.join(", ");
    buttons.forEach(function (b) { b.classList.toggle("on", Number(b.dataset.unit) === unit); });
  }
  pick.addEventListener("change", function () { show(pick.value); });
  document.getElementById("prev").addEventListener("click", function () { show(unit - 1); });
  document.getElementById("next").addEventListener("click", function () { show(unit + 1); });

  const tip = document.getElementById("tip");
  box.addEventListener("mouseover", function (ev) {
    const s = ev.target.closest ? ev.target.closest("span.c") : null;
    if (!s) return;
    const t = Number(s.dataset.t);
    tip.textContent = "";
    const head = document.createElement("div");
    head.textContent = "after '" + disp(D.chars[t]) + "' (char " + t + "): h[" + unit + "] = " +
      (A[t * H + unit] / 127).toFixed(2);
    tip.appendChild(head);
    const sub = document.createElement("div");
    sub.textContent = "next character:";
    tip.appendChild(sub);
    D.preds[t].forEach(function (pr) {
      const row = document.createElement("div"), bar = document.createElement("span");
      row.className = "pred";
      row.textContent = "'" + disp(pr[0]) + "'  " + (100 * pr[1]).toFixed(1) + "%";
      bar.className = "bar";
      bar.style.width = Math.round(80 * pr[1]) + "px";
      row.appendChild(bar);
      tip.appendChild(row);
    });
    tip.hidden = false;
    const r = s.getBoundingClientRect();
    tip.style.left = Math.min(r.left, window.innerWidth - tip.offsetWidth - 8) + "px";
    tip.style.top = (r.bottom + 6 + tip.offsetHeight > window.innerHeight ? r.top - tip.offsetHeight - 6
                     : r.bottom + 6) + "px";
  });
  box.addEventListener("mouseleave", function () { tip.hidden = true; });
  show(D.unit);
})();
</script>
</body>
</html>
"""
