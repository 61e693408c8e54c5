#!/bin/sh
# Builds {{stem}}.wasm with componentize-py and checks it with genai-bench.
# componentize-py: $COMPONENTIZE_PY, else the one on PATH
# (python3 -m venv .venv && .venv/bin/pip install -r requirements.txt).
set -eu
cd "$(dirname "$0")"
CPY=${COMPONENTIZE_PY:-componentize-py}
python3 -m unittest -q test_logic
rm -rf build/bindings && mkdir -p build
"$CPY" -d wit -w plugin bindings build/bindings
"$CPY" -d wit -w plugin componentize backend -p . -p build/bindings -o {{stem}}.wasm
if command -v genai-bench >/dev/null; then
  genai-bench plugin check {{stem}}.wasm --fixtures fixtures
fi
