#!/usr/bin/env bash
# Installs what the tests need, idempotently (each step is skipped when its
# result is already there). README.md's test command runs it before
# `cargo test`; .ci/run runs that command.
#
#   wasm32-wasip2 target        rustup (the build compiles plugins/ to it)
#   TGI and Ollama plugins      plugins/build-other-languages.sh (componentize-py
#                               from PyPI, componentize-js from npm, pinned)
#   Chromium                    Debian package: renders report.html headless
#   fonts-wqy-microhei          Debian package: CJK glyphs for plots
#   genai-bench 0.0.5           target/py-genai-bench: reads our result files;
#                               its user classes are the wire reference (tests/wire)
#   Truss model server, llmock, tests/servers/setup.sh, into target/servers
#   moto (S3)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[tests/setup] %s\n' "$*" >&2; }
started=$(date +%s)

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
apt_install() {
  if command -v apt-get >/dev/null; then
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
  else
    say "missing $*: install it with your package manager"
    exit 1
  fi
}

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  say "adding the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
fi

# The Python (TGI) and JavaScript (Ollama) plugins, which tests/e2e loads
# from target/plugins-other/.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt_install python3-venv
fi
bash plugins/build-other-languages.sh

# Reports tests: headless Chromium renders the HTML report, and the Python
# genai-bench 0.0.5 (pinned) must read our experiment folders.
if ! command -v chromium >/dev/null 2>&1; then
  say "installing chromium"
  apt_install chromium
fi
# A CJK font, so plots of models named in Chinese, Japanese or Korean are
# drawn with glyphs, not boxes (the reports tests check it).
if [ ! -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]; then
  say "installing fonts-wqy-microhei"
  apt_install fonts-wqy-microhei
fi
if [ ! -x target/py-genai-bench/bin/genai-bench ]; then
  # genai-bench 0.0.5 wants Python >=3.10,<3.13.
  py=""
  for p in python3.12 python3.11 python3.10 python3; do
    if command -v "$p" >/dev/null 2>&1 &&
      "$p" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] < (3, 13)))'; then
      py="$p"
      break
    fi
  done
  if [ -z "$py" ]; then
    say "genai-bench 0.0.5 needs Python 3.10-3.12 (for the compatibility test)"
    exit 1
  fi
  say "installing genai-bench 0.0.5 into target/py-genai-bench"
  "$py" -m venv target/py-genai-bench
  target/py-genai-bench/bin/pip install -q genai-bench==0.0.5
fi

# genai-bench's optional [aws] and [gcp] extras, beside its venv (not in it):
# tests/wire/genai_bench_wire.py drives its Bedrock and Vertex users with them.
if [ ! -f target/py-wire-extras/.installed-1 ]; then
  say "installing boto3 and google-auth into target/py-wire-extras"
  rm -rf target/py-wire-extras
  target/py-genai-bench/bin/pip install -q --target target/py-wire-extras \
    boto3==1.44.8 botocore==1.44.8 google-auth==2.63.0
  touch target/py-wire-extras/.installed-1
fi

# Real third-party servers for tests/e2e/real_servers.rs (tests/servers/README.md).
bash tests/servers/setup.sh

say "ready in $(($(date +%s) - started)) s"
