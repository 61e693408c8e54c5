#!/bin/sh
# Builds the plugin and checks it with genai-bench (on PATH).
set -eu
cd "$(dirname "$0")"
cargo test
cargo build --release --target wasm32-wasip2
genai-bench plugin check target/wasm32-wasip2/release/{{stem}}.wasm --fixtures fixtures
