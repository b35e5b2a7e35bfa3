#!/bin/sh
# Set up ./.venv with everything the tests need (numpy, safetensors, tqdm, pytest, hypothesis, torch CPU) and run
# the whole test suite. Extra arguments go to pytest.
set -e
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q -e '.[test,plot]' 'torch==2.13.0'
# Headless Chromium for the viz page test (Debian's package); only as root with apt-get, never fatal: without it
# that one test skips.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || true
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
