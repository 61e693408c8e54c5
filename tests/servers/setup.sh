#!/usr/bin/env bash
# Installs the real third-party servers used by the end-to-end tests, into
# target/servers/ (ignored by git). Idempotent: every finished step leaves a
# marker holding a hash of its inputs, and a re-run skips steps whose marker
# matches. See README.md beside this file.
#
#   tests/servers/setup.sh            # install or bring up to date
#   SERVERS_DIR=/x tests/servers/setup.sh   # somewhere else
#   PYTHON=/usr/bin/python3.11 ...    # another interpreter (3.9-3.13)
#
# Layout made under $SERVERS_DIR (default <repo>/target/servers):
#   venv-truss/          truss==0.18.36 (the CLI, used only to build the context)
#   truss-src/           copy of tests/servers/truss (truss never writes into the repo)
#   truss-build/         output of `truss image build-context`
#   truss-app/           the image's /app: server/*, model/, data/, config.yaml, run_local.py
#   venv-truss-server/   the server's requirements.txt + constraints.txt
#   venv-llmock/         llmock==0.2.2
#   venv-moto/           moto[s3,server]==5.2.5 (S3 with SigV4 checks)
#   .done/<step>         markers;  logs/<step>.log  pip output
set -Eeuo pipefail

TRUSS_VERSION=0.18.36
LLMOCK_VERSION=0.2.2
MOTO_VERSION=5.2.5

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DEST=${SERVERS_DIR:-$REPO/target/servers}
PY=${PYTHON:-python3}
LOCKS=$HERE/locks

mkdir -p "$DEST/.done" "$DEST/logs"
DEST=$(cd "$DEST" && pwd)

# One setup at a time (tests may call this in parallel).
exec 9>"$DEST/.lock"
if ! flock -n 9; then
  echo "setup.sh: another setup.sh is running on $DEST; waiting for it..."
  flock 9
fi

CURRENT_STEP=""
CURRENT_LOG=""
on_error() {
  local rc=$?
  echo >&2
  echo "setup.sh: FAILED in step '${CURRENT_STEP:-?}' (exit $rc)." >&2
  if [[ -n "$CURRENT_LOG" && -s "$CURRENT_LOG" ]]; then
    echo "setup.sh: last lines of $CURRENT_LOG:" >&2
    tail -n 25 "$CURRENT_LOG" >&2
  fi
  exit "$rc"
}
trap on_error ERR

die() { echo "setup.sh: ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# hash_of FILE_OR_DIR... : one sha256 over the content of every file (sorted).
hash_of() {
  local p
  {
    for p in "$@"; do
      if [[ -d "$p" ]]; then
        (cd "$p" && find . -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
          | LC_ALL=C sort -z | xargs -0 -r sha256sum)
      elif [[ -f "$p" ]]; then
        sha256sum < "$p"
      else
        echo "absent:$p"
      fi
    done
  } | sha256sum | cut -c1-16
}

# lock_args NAME : "-c locks/NAME.txt" when the lock file exists.
lock_args() {
  if [[ -f "$LOCKS/$1.txt" ]]; then echo "-c $LOCKS/$1.txt"; fi
}

TOTAL_START=$(now)
# step NAME KEY FUNCTION PRODUCT : run FUNCTION unless .done/NAME holds KEY
# and PRODUCT (a file the step makes) still exists.
step() {
  local name=$1 key=$2 fn=$3 product=$4 t0
  CURRENT_STEP=$name
  CURRENT_LOG=$DEST/logs/$name.log
  if [[ -f "$DEST/.done/$name" && "$(cat "$DEST/.done/$name")" == "$key" && -e "$product" ]]; then
    printf '[setup] %-18s up to date (key %s), skipped\n' "$name" "$key"
    return 0
  fi
  rm -f "$DEST/.done/$name"
  printf '[setup] %-18s running (log %s)\n' "$name" "$CURRENT_LOG"
  t0=$(now)
  : > "$CURRENT_LOG"
  "$fn"
  echo "$key" > "$DEST/.done/$name"
  printf '[setup] %-18s done in %ss\n' "$name" "$(elapsed "$t0")"
}

# ---------------------------------------------------------------- checks
command -v "$PY" >/dev/null || die "$PY not found (set PYTHON=...)"
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$PY" -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] < (3, 14) else 1)' \
  || die "$PY is Python $PYVER; truss $TRUSS_VERSION needs 3.9-3.13"
"$PY" -c 'import venv, ensurepip' 2>/dev/null \
  || die "$PY lacks venv/ensurepip (Debian: apt-get install python3-venv)"
echo "[setup] python: $(command -v "$PY") ($PYVER); destination: $DEST"

new_venv() { # new_venv DIR
  rm -rf "$1"
  "$PY" -m venv "$1" >>"$CURRENT_LOG" 2>&1
}
pip_in() { # pip_in VENV ARGS...
  local v=$1; shift
  "$v/bin/pip" install --disable-pip-version-check --no-input "$@" >>"$CURRENT_LOG" 2>&1
}

# ---------------------------------------------------------------- 1. truss CLI
do_venv_truss() {
  new_venv "$DEST/venv-truss"
  # shellcheck disable=SC2046
  pip_in "$DEST/venv-truss" "truss==$TRUSS_VERSION" $(lock_args truss)
  "$DEST/venv-truss/bin/truss" --version >>"$CURRENT_LOG" 2>&1
}
step venv-truss "$(hash_of "$LOCKS/truss.txt")-$TRUSS_VERSION-$PYVER" do_venv_truss "$DEST/venv-truss/bin/truss"

# ---------------------------------------------------------------- 2. build context
SRC_KEY=$(hash_of "$HERE/truss")
do_build_context() {
  rm -rf "$DEST/truss-src" "$DEST/truss-build"
  mkdir -p "$DEST/truss-src"
  cp -r "$HERE/truss/config.yaml" "$HERE/truss/model" "$DEST/truss-src/"
  find "$DEST/truss-src" -name __pycache__ -prune -exec rm -rf {} +
  (cd "$DEST" && "$DEST/venv-truss/bin/truss" image build-context "$DEST/truss-build" "$DEST/truss-src") \
    >>"$CURRENT_LOG" 2>&1
  [[ -f "$DEST/truss-build/server/requirements.txt" ]] || die "build context has no server/requirements.txt"
}
step build-context "$SRC_KEY-$TRUSS_VERSION" do_build_context "$DEST/truss-build/server/requirements.txt"

# ---------------------------------------------------------------- 3. app layout
do_app_layout() {
  rm -rf "$DEST/truss-app"
  mkdir -p "$DEST/truss-app"
  # As the Dockerfile does: server/* -> /app, model/ -> /app/model, plus data/ and config.yaml.
  cp -r "$DEST/truss-build/server/." "$DEST/truss-app/"
  local d
  for d in model data config.yaml; do
    if [[ -e "$DEST/truss-build/$d" ]]; then cp -r "$DEST/truss-build/$d" "$DEST/truss-app/"; fi
  done
  cp "$HERE/truss/run_local.py" "$DEST/truss-app/run_local.py"
}
step app-layout "$SRC_KEY-$TRUSS_VERSION" do_app_layout "$DEST/truss-app/run_local.py"

# ---------------------------------------------------------------- 4. server venv
SERVER_REQ=$DEST/truss-build/server/requirements.txt
SERVER_CON=$DEST/truss-build/server/constraints.txt
do_venv_truss_server() {
  new_venv "$DEST/venv-truss-server"
  local args=(-r "$SERVER_REQ")
  if [[ -f "$SERVER_CON" ]]; then args+=(-c "$SERVER_CON"); fi
  # shellcheck disable=SC2046
  pip_in "$DEST/venv-truss-server" "${args[@]}" $(lock_args truss-server)
  # Import check from inside the app, as the server starts.
  (cd "$DEST/truss-app" && "$DEST/venv-truss-server/bin/python" -c \
    'import sys; sys.path.insert(0, "."); import truss_server, uvicorn; print("truss_server import ok")') \
    >>"$CURRENT_LOG" 2>&1
}
step venv-truss-server "$(hash_of "$SERVER_REQ" "$SERVER_CON" "$LOCKS/truss-server.txt")-$PYVER" do_venv_truss_server "$DEST/venv-truss-server/bin/python"

# ---------------------------------------------------------------- 5. llmock
do_venv_llmock() {
  new_venv "$DEST/venv-llmock"
  # shellcheck disable=SC2046
  pip_in "$DEST/venv-llmock" "llmock==$LLMOCK_VERSION" $(lock_args llmock)
  "$DEST/venv-llmock/bin/llmock" --help >>"$CURRENT_LOG" 2>&1
}
step venv-llmock "$(hash_of "$LOCKS/llmock.txt")-$LLMOCK_VERSION-$PYVER" do_venv_llmock "$DEST/venv-llmock/bin/llmock"

# ---------------------------------------------------------------- 6. moto (S3)
# An S3-compatible server that checks SigV4 signatures (with
# INITIAL_NO_AUTH_ACTION_COUNT set), for --upload-results.
do_venv_moto() {
  new_venv "$DEST/venv-moto"
  # shellcheck disable=SC2046
  pip_in "$DEST/venv-moto" "moto[s3,server]==$MOTO_VERSION" $(lock_args moto)
  "$DEST/venv-moto/bin/moto_server" --help >>"$CURRENT_LOG" 2>&1
}
step venv-moto "$(hash_of "$LOCKS/moto.txt")-$MOTO_VERSION-$PYVER" do_venv_moto "$DEST/venv-moto/bin/moto_server"

CURRENT_STEP=""
CURRENT_LOG=""
echo "[setup] all done in $(elapsed "$TOTAL_START")s"
echo "[setup] truss server: INFERENCE_SERVER_PORT=PORT $DEST/venv-truss-server/bin/python $DEST/truss-app/run_local.py"
echo "[setup] llmock:       $HERE/llmock.sh PORT [llmock serve options]"
