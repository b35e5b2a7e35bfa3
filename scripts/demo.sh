#!/bin/sh
# Set up rnnlab in ./.venv (only Python >= 3.10 needed) and run the main job: train a character model on the
# embedded corpus for two minutes, then sample from it.
set -e
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q -e .
RUN=${RUN:-runs/demo}
if [ -f "$RUN/latest.safetensors" ]; then
  echo "$RUN already holds a run: sampling from it (delete it, or set RUN=runs/other, to train again)"
else
  .venv/bin/rnnlab train --out "$RUN" --max-time "${SECONDS_BUDGET:-120}" --max-steps 100000 --eval-every 100
fi
.venv/bin/rnnlab sample "$RUN" --length 400 --temperature 0.8
