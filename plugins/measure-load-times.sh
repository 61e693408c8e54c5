#!/usr/bin/env bash
# First-load (compile) and cached-load times of the plugins in
# target/plugins-other/ (and the built-in Baseten plugin for scale), read
# from `genai-bench plugin inspect --json` (`load_ms`: compile or cache read,
# link, instantiate, `info`) with an empty and then a warm compiled-plugin
# cache. Usage: plugins/measure-load-times.sh [path/to/genai-bench] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/genai-bench}
RUNS=${2:-3}
CACHE=$(mktemp -d)
trap 'rm -rf "$CACHE"' EXIT
printf '%-8s %9s %13s %12s %11s\n' plugin wasm_MB first_load_ms cached_ms cwasm_MB
for p in baseten target/plugins-other/tgi.wasm target/plugins-other/ollama.wasm; do
  first=() cached=()
  for _ in $(seq "$RUNS"); do
    rm -rf "$CACHE"/*
    first+=("$(GENAI_BENCH_CACHE_DIR=$CACHE "$BIN" plugin inspect --json "$p" | python3 -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["load_ms"])')")
    cached+=("$(GENAI_BENCH_CACHE_DIR=$CACHE "$BIN" plugin inspect --json "$p" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["compiled_from_cache"]; print("%.1f" % d["load_ms"])')")
  done
  size=$( [ -f "$p" ] && du -m --apparent-size "$p" | cut -f1 || echo built-in)
  cwasm=$(du -m --apparent-size "$CACHE"/plugins/*.cwasm | cut -f1)
  printf '%-8s %9s %13s %12s %11s\n' "$(basename "$p" .wasm)" "$size" "$(IFS=/; echo "${first[*]}")" "$(IFS=/; echo "${cached[*]}")" "$cwasm"
done
