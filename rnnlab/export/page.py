"""The HTML and CSS of `rnnlab export --format html`; page_js.py holds its script, html.py fills it.

html.render replaces %TITLE% and %NOTE% (HTML-escaped), %MODEL% (JSON with every '<' written as \\u003c, so it can
never close its <script> element), %WEIGHTS% (base64: no '<' at all) and %SCRIPT%. No network: no external script,
font or image, and the favicon is an empty data: URL. Generated text enters the DOM as text nodes only.
"""

TEMPLATE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>%TITLE%</title>
<style>
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 16px 24px; color: #222;
         max-width: 1100px; }
  h1 { font-size: 17px; margin: 0 0 2px; }
  .note { color: #666; font-size: 12px; margin-bottom: 10px; }
  #main { display: flex; gap: 24px; align-items: flex-start; flex-wrap: wrap; }
  #left { flex: 1 1 480px; min-width: 320px; }
  #controls { display: grid; grid-template-columns: repeat(3, auto); gap: 6px 14px; justify-content: start;
              margin: 8px 0; }
  #controls label { font-size: 13px; color: #444; }
  #controls input[type=number] { width: 80px; font: inherit; }
  #prime { width: 100%; box-sizing: border-box; font: 13px ui-monospace, "DejaVu Sans Mono", Menlo, monospace;
           height: 3.2em; }
  button { font: inherit; padding: 3px 12px; }
  #output { font: 13px/1.55 ui-monospace, "DejaVu Sans Mono", Menlo, monospace; white-space: pre-wrap;
            overflow-wrap: anywhere; border: 1px solid #ddd; border-radius: 4px; padding: 10px; min-height: 8em;
            background: #fcfcfc; margin: 8px 0 4px; }
  #speed { color: #666; font-size: 12px; }
  #error { color: #b00; font-size: 13px; margin: 6px 0; }
  table.card { border-collapse: collapse; font-size: 12px; }
  table.card th { text-align: left; color: #555; font-weight: 600; padding: 3px 10px 3px 0; vertical-align: top; }
  table.card td { padding: 3px 0; font-family: ui-monospace, monospace; overflow-wrap: anywhere; max-width: 300px; }
</style>
</head>
<body data-state="loading">
<h1>%TITLE%</h1>
<div class="note">%NOTE%</div>
<div id="main">
<div id="left">
  <label for="prime">prime (the text to continue; empty: start from a newline)</label>
  <textarea id="prime" spellcheck="false"></textarea>
  <div id="controls">
    <label>temperature <input id="temperature" type="number" min="0" step="0.05" value="0.8"></label>
    <label>top-k <input id="top_k" type="number" min="0" step="1" value="0"></label>
    <label>top-p <input id="top_p" type="number" min="0" max="1" step="0.05" value="1"></label>
    <label>length <input id="length" type="number" min="0" step="1" value="500"></label>
    <label>seed <input id="seed" type="number" min="0" step="1" value="0"></label>
    <label><input id="argmax" type="checkbox"> argmax (greedy)</label>
  </div>
  <button id="go">Generate</button> <button id="stop">Stop</button>
  <div id="error" hidden></div>
  <div id="output"></div>
  <div id="speed"></div>
</div>
<div id="right">
  <table class="card"><tbody id="card"></tbody></table>
</div>
</div>
<script type="application/json" id="model">%MODEL%</script>
<script type="application/octet-stream" id="weights">%WEIGHTS%</script>
<script>%SCRIPT%</script>
</body>
</html>
"""
