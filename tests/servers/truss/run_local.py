"""Start the Truss model server on loopback without Docker.

truss_server hard-codes host 0.0.0.0; this wraps uvicorn.Config so the server
binds TRUSS_HOST (default 127.0.0.1) instead. Port from INFERENCE_SERVER_PORT
(default 8080; 0 lets the OS pick one, printed in the "Uvicorn running on"
log line). The graceful-shutdown wait on SIGTERM is TRUSS_GRACEFUL_SHUTDOWN_S
(default 2 s instead of truss's 3600 s). Copied next to truss_server.py by
tests/servers/setup.sh.

    INFERENCE_SERVER_PORT=8104 target/servers/venv-truss-server/bin/python \
        target/servers/truss-app/run_local.py
Ready when GET http://127.0.0.1:PORT/v1/models/model answers 200.
"""
import os
import sys

import uvicorn

APP_DIR = os.path.dirname(os.path.abspath(__file__))

_orig_init = uvicorn.Config.__init__


def _loopback_init(self, *args, **kwargs):
    kwargs["host"] = os.environ.get("TRUSS_HOST", "127.0.0.1")
    # truss waits up to 3600 s for open requests on SIGTERM; tests want a
    # prompt stop (a stalled stream would otherwise hold the process).
    kwargs["timeout_graceful_shutdown"] = float(os.environ.get("TRUSS_GRACEFUL_SHUTDOWN_S", "2"))
    _orig_init(self, *args, **kwargs)


uvicorn.Config.__init__ = _loopback_init

os.chdir(APP_DIR)
sys.path.insert(0, APP_DIR)

from truss_server import TrussServer  # noqa: E402

TrussServer(int(os.environ.get("INFERENCE_SERVER_PORT", "8080")), "config.yaml").start()
