#!/usr/bin/env bash
# Start llmock (OpenAI-compatible mock with chaos options) on loopback.
#
#   tests/servers/llmock.sh PORT [llmock serve options...]
#   tests/servers/llmock.sh 8101 --latency-ms 200 --stream-chunk-delay-ms 20 \
#       --stream-fault truncate=1.0 --error-rate-500 0.2
#
# The script execs llmock, so the PID you started is the server's PID: stop it
# with kill PID. Ready when GET http://127.0.0.1:PORT/v1/models answers 200.
# Binds 127.0.0.1 only (--host/-h are refused). Needs tests/servers/setup.sh.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEST=${SERVERS_DIR:-$(cd "$HERE/../.." && pwd)/target/servers}
LLMOCK=$DEST/venv-llmock/bin/llmock

if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 PORT [llmock serve options...]" >&2
  exit 2
fi
PORT=$1; shift
for a in "$@"; do
  case $a in
    --host|--host=*|-h) echo "llmock.sh: --host is fixed to 127.0.0.1" >&2; exit 2 ;;
  esac
done
if [[ ! -x $LLMOCK ]]; then
  echo "llmock.sh: $LLMOCK not found; run tests/servers/setup.sh first" >&2
  exit 1
fi
exec "$LLMOCK" serve --host 127.0.0.1 --port "$PORT" "$@"
