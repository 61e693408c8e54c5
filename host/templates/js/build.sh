#!/bin/sh
# Builds {{stem}}.wasm with componentize-js and checks it with genai-bench.
# componentize-js: $COMPONENTIZE_JS, else node_modules/.bin (npm install).
set -eu
cd "$(dirname "$0")"
CJS=${COMPONENTIZE_JS:-node_modules/.bin/componentize-js}
node --test test.mjs
# http and fetch-event are on by default and would import wasi:http.
"$CJS" --wit wit --world-name plugin -d http fetch-event -o {{stem}}.wasm plugin.js
if command -v genai-bench >/dev/null; then
  genai-bench plugin check {{stem}}.wasm --fixtures fixtures
fi
