#!/bin/sh
# Set up ./.venv with everything the tests need (numpy, safetensors, tqdm, pytest, hypothesis, torch CPU) and run
# the whole test suite. Extra arguments go to pytest.
set -e
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q -e '.[test,plot]' 'torch==2.13.0'
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
