"""WIT glue of the TGI plugin: the only module that touches the bindings.

componentize-py wants the exported interface `backend` as a class `Backend`
of the app module and its resource `response-parser` as a class
`ResponseParser` of a top-level module named after the interface: this
module is both. Everything else lives in `tgi_core`.

CONTRACT VERSION: built against contract 0.2.0 (`wit/v0.2.0/backend.wit`, the
host keeps loading it; see plugins/build-other-languages.sh); the `info()` below is the
one place that builds a `plugin-info`. Porting to a newer contract touches
only `info()` (new fields) and `_request_fields()` (new request fields).
"""

import componentize_py_types
from wit_world import exports as wit_exports
from wit_world.exports import backend as wit_backend
from wit_world.imports import host
from wit_world.imports.types import (
    ApiError,
    AuthHeader,
    Event_Content,
    Event_End,
    Event_Error,
    Event_Usage,
    HttpRequest,
    LogLevel,
    PluginInfo,
    Task,
    Usage,
)

import tgi_core

_TASKS = {
    Task.TEXT_TO_TEXT: "text-to-text",
    Task.IMAGE_TEXT_TO_TEXT: "image-text-to-text",
    Task.TEXT_TO_EMBEDDINGS: "text-to-embeddings",
}
_LEVELS = {"debug": LogLevel.DEBUG, "warn": LogLevel.WARN}


def _log(level, message):
    host.log(_LEVELS.get(level, LogLevel.INFO), message)


def _request_fields(request):
    """The request fields the plugin uses, as plain values."""
    return dict(
        task=_TASKS[request.task],
        prompt=request.prompt,
        messages=[(m.role, m.content) for m in request.messages],
        image_urls=list(request.image_urls),
        max_tokens=request.max_tokens,
        stream=request.stream,
        params_json=request.params_json,
    )


def _events(plain):
    out = []
    for e in plain:
        kind = e[0]
        if kind == "content":
            out.append(Event_Content(e[1]))
        elif kind == "usage":
            out.append(Event_Usage(Usage(prompt_tokens=e[1], completion_tokens=e[2],
                                         reasoning_tokens=None)))
        elif kind == "error":
            out.append(Event_Error(ApiError(code=e[1], message=e[2])))
        else:
            out.append(Event_End())
    return out


def _guarded(call):
    """Failures become the `err` case with their message; any other
    exception is a bug, reported (with its type) rather than trapping."""
    try:
        return call()
    except tgi_core.Failure as e:
        raise componentize_py_types.Err(str(e))
    except Exception as e:  # noqa: BLE001 - the host must get a message, not a trap
        raise componentize_py_types.Err(
            "internal error in the TGI plugin: %s: %s" % (type(e).__name__, e)
        )


class Backend(wit_exports.Backend):
    def info(self):
        return PluginInfo(
            name=tgi_core.PLUGIN_NAME,
            version=tgi_core.PLUGIN_VERSION,
            description=tgi_core.PLUGIN_DESCRIPTION,
            tasks=[Task.TEXT_TO_TEXT, Task.IMAGE_TEXT_TO_TEXT],
            # Hugging Face Inference Endpoints take a bearer token; a local
            # TGI ignores the header.
            auth=AuthHeader(name="Authorization", prefix="Bearer "),
            # `--api-backend` names besides `name`: none.
            backends=[],
        )

    def validate_params(self, params_json):
        _guarded(
            lambda: tgi_core.check_params(
                tgi_core.parse_params(params_json), lambda msg: _log("warn", msg)
            )
        )

    def build_request(self, request):
        method, path, headers, body = _guarded(
            lambda: tgi_core.build_request(**_request_fields(request))
        )
        return HttpRequest(method=method, path=path, headers=headers, body=body)


class ResponseParser(wit_backend.ResponseParser):
    def __init__(self, head):
        self._parser = tgi_core.Parser(head.status, head.headers, head.stream, _log)

    def feed(self, chunk):
        return _guarded(lambda: _events(self._parser.feed(chunk)))

    def finish(self):
        return _guarded(lambda: _events(self._parser.finish()))
