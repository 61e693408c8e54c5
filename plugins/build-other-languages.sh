#!/usr/bin/env bash
# Builds the plugins written in other languages than Rust:
#   plugins/tgi-python  (componentize-py)  -> target/plugins-other/tgi.wasm
#   plugins/ollama-js   (componentize-js)  -> target/plugins-other/ollama.wasm
#
# Installs the pinned tools first when missing: componentize-py from
# plugins/tgi-python/requirements.txt into a venv at target/py-tools, and
# `npm ci` of plugins/ollama-js/package-lock.json into target/js-tools/ollama
# (outside the source tree, so node_modules never sits under plugins/).
# Idempotent: a plugin is rebuilt only when its sources, the WIT contract or
# the tool pins changed. Needs python3 (with venv) and node/npm >= 20.
#
# Usage: plugins/build-other-languages.sh [tgi|ollama]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/plugins-other
BUILD=$OUT/build
mkdir -p "$BUILD"

say() { printf '[plugins-other] %s\n' "$*" >&2; }
need() {
  command -v "$1" >/dev/null 2>&1 || {
    say "missing '$1': $2"
    exit 1
  }
}

# A fingerprint of everything an output depends on.
fingerprint() {
  find "$@" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' ! -path '*/node_modules/*' -print0 |
    sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}

# Rebuild $1 (output) with command "${@:3}" unless fingerprint $2 is unchanged.
build_if_changed() {
  local out=$1 fp=$2
  shift 2
  if [ -f "$out" ] && [ "$(cat "$out.inputs" 2>/dev/null)" = "$fp" ]; then
    say "$(basename "$out") is up to date"
    return
  fi
  rm -f "$out.inputs"
  local start=$SECONDS
  "$@"
  echo "$fp" >"$out.inputs"
  say "built $(basename "$out") ($(du -h "$out" | cut -f1)) in $((SECONDS - start)) s"
}

py_tools() {
  local venv=$ROOT/target/py-tools req=$ROOT/plugins/tgi-python/requirements.txt
  if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$(cat "$req")" ] || [ ! -x "$venv/bin/componentize-py" ]; then
    need python3 "install Python 3.10+ with venv (Debian: apt-get install python3 python3-venv)"
    say "installing $(tr '\n' ' ' <"$req")into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$venv/.requirements"
  fi
}

js_tools() {
  local dir=$ROOT/target/js-tools/ollama src=$ROOT/plugins/ollama-js
  if ! cmp -s "$src/package-lock.json" "$dir/package-lock.json" || [ ! -x "$dir/node_modules/.bin/componentize-js" ]; then
    need npm "install Node.js 20+ and npm (Debian: apt-get install nodejs npm)"
    say "npm ci of plugins/ollama-js/package-lock.json into $dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$src/package.json" "$src/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Both plugins are built against contract 0.2.0 (frozen in wit/v0.2.0/):
# the host keeps loading plugins of older contracts, and these two show it
# in every test run. New plugins start from `genai-bench plugin new`, which
# uses the current contract.
CONTRACT=wit/v0.2.0

build_tgi() {
  py_tools
  local bindings=$BUILD/tgi-bindings src=$BUILD/tgi-src
  # The bindings are generated from the contract at every build, never
  # committed. The sources are copied out because componentize-py writes
  # __pycache__ beside them, which would make the host's build script rerun.
  rm -rf "$bindings" "$src"
  mkdir -p "$src"
  cp plugins/tgi-python/*.py "$src/"
  "$ROOT/target/py-tools/bin/componentize-py" -d "$CONTRACT" -w plugin bindings "$bindings"
  "$ROOT/target/py-tools/bin/componentize-py" -d "$CONTRACT" -w plugin componentize backend \
    -p "$src" -p "$bindings" -o "$OUT/tgi.wasm.tmp" >/dev/null
  mv "$OUT/tgi.wasm.tmp" "$OUT/tgi.wasm"
}

build_ollama() {
  # plugin.js names the contract version in its host import; a mismatch
  # would only show as an obscure componentize error.
  local version
  version=$(sed -n 's/^package genai-bench:backend@\(.*\);$/\1/p' "$CONTRACT/backend.wit")
  if ! grep -q "from 'genai-bench:backend/host@$version'" plugins/ollama-js/plugin.js; then
    say "$CONTRACT/backend.wit is genai-bench:backend@$version but plugins/ollama-js/plugin.js imports another version:"
    say "update its 'genai-bench:backend/host@...' import and the plugin-info built in info() (see the CONTRACT VERSION comment)"
    exit 1
  fi
  js_tools
  local src=$BUILD/ollama-src
  # componentize-js reads the WIT from beside the sources.
  rm -rf "$src"
  mkdir -p "$src"
  cp plugins/ollama-js/*.js "$src/"
  mkdir -p "$src/wit"
  cp "$CONTRACT/backend.wit" "$src/wit/"
  # http and fetch-event are on by default and would import wasi:http.
  (cd "$src" && "$ROOT/target/js-tools/ollama/node_modules/.bin/componentize-js" \
    --wit wit --world-name plugin -d http fetch-event -o "$OUT/ollama.wasm.tmp" plugin.js)
  mv "$OUT/ollama.wasm.tmp" "$OUT/ollama.wasm"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(tgi ollama)
for t in "${targets[@]}"; do
  case $t in
  tgi)
    if command -v python3 >/dev/null; then
      # No __pycache__ in the source tree: it would make the host build script rerun.
      (cd plugins/tgi-python && PYTHONDONTWRITEBYTECODE=1 python3 -m unittest -q test_tgi_core 2>&1 | tail -n 3 >&2)
    fi
    build_if_changed "$OUT/tgi.wasm" "$(fingerprint plugins/tgi-python "$CONTRACT")" build_tgi
    ;;
  ollama)
    need node "install Node.js 20+ (Debian: apt-get install nodejs npm)"
    (cd plugins/ollama-js && node --test --test-reporter=dot test.mjs >&2)
    build_if_changed "$OUT/ollama.wasm" "$(fingerprint plugins/ollama-js "$CONTRACT")" build_ollama
    ;;
  *)
    say "unknown plugin '$t' (expected tgi or ollama)"
    exit 2
    ;;
  esac
done
