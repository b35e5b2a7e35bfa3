"""The exported web page's speed in headless Chromium: time to the first character and chars/s, LSTM H=512 L=2.

Writes a freshly initialised model (speed does not depend on training: one training step of the torch engine on a
65-symbol text) unless RUN is given, exports it with `rnnlab export --format html` in float32 and float16, opens
each page with ?autorun=1 in headless Chromium (tests/cdp.py) and prints the page's own numbers: file size, time
from navigation to the weights being ready, to the first generated character, and characters per second.
--screenshot FILE also saves a picture of the float32 page after generating (docs/img/export.png is one).

    .venv/bin/python bench/export_page.py [RUN] [--length 2000] [--screenshot docs/img/export.png]
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def rnnlab(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "rnnlab", *map(str, args)], env=env, capture_output=True, text=True)
    if p.returncode:
        sys.exit(p.stderr)
    return p.stdout


def fresh_model(tmp: Path) -> Path:
    text = "".join(chr(c) for c in range(32, 96)) + "\n"                 # 65 symbols, as tinyshakespeare has
    (tmp / "t.txt").write_text(text * 40, encoding="utf-8")
    rnnlab("train", "--data", tmp / "t.txt", "--out", tmp / "run", "--cell", "lstm", "--hidden-size", 512,
           "--num-layers", 2, "--batch-size", 1, "--seq-len", 8, "--max-steps", 1, "--eval-every", 1,
           "--engine", "torch", "--no-progress")
    return tmp / "run"


def measure(page: Path, query: dict, shot=None) -> dict:
    from cdp import Browser
    with Browser(timeout=300) as b:
        b.open(page.resolve().as_uri() + "?" + urlencode(query))
        b.eval("new Promise(r => { const f = () => document.body.dataset.state === 'done' ? r() :"
               " setTimeout(f, 50); f(); })")
        stats = b.eval("window.rnnlab.stats")
        if shot:
            b.call("Emulation.setDeviceMetricsOverride", width=1100, height=640, deviceScaleFactor=1, mobile=False)
            b.screenshot(shot)
        if b.errors:
            sys.exit(f"page errors: {b.errors}")
    return stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", help="a run directory (default: a fresh LSTM H=512 L=2)")
    ap.add_argument("--length", type=int, default=2000, help="characters to generate (default: 2000)")
    ap.add_argument("--prime", default="", help="the page's prime (default: none)")
    ap.add_argument("--temperature", default="0.8")
    ap.add_argument("--screenshot", help="save a PNG of the float32 page here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = Path(args.run) if args.run else fresh_model(tmp)
        print(f"{'page':<8} {'size':>12} {'ready':>9} {'first char':>11} {'chars/s':>8}")
        for dtype in ("float32", "float16"):
            page = tmp / f"{dtype}.html"
            rnnlab("export", run, "--format", "html", "--out", page, "--dtype", dtype)
            query = {"prime": args.prime, "length": args.length, "temperature": args.temperature, "autorun": 1}
            s = measure(page, query, args.screenshot if dtype == "float32" else None)
            print(f"{dtype:<8} {page.stat().st_size:>12,} {s['load_ms']:>7.0f}ms {s['first_ms']:>9.0f}ms "
                  f"{s['chars_per_s']:>8.0f}")


if __name__ == "__main__":
    main()
