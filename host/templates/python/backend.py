"""WIT glue of the '{{name}}' plugin: the only module that touches the bindings.

componentize-py wants the exported interface `backend` as a class `Backend`
of the app module and its resource `response-parser` as a class
`ResponseParser` of a top-level module named after the interface: this
module is both. The logic lives in `logic.py`.
"""

import componentize_py_types
from wit_world import exports as wit_exports
from wit_world.exports import backend as wit_backend
from wit_world.imports import host
from wit_world.imports.types import (
    ApiError,
    AuthHeader,
    AuthScheme_Header,
    BuiltRequest,
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

import logic


def _events(plain):
    out = []
    for e in plain:
        if e[0] == "content":
            out.append(Event_Content(e[1]))
        elif e[0] == "usage":
            out.append(Event_Usage(Usage(prompt_tokens=e[1], completion_tokens=e[2],
                                         reasoning_tokens=None)))
        elif e[0] == "error":
            out.append(Event_Error(ApiError(code=e[1], message=e[2])))
        else:
            out.append(Event_End())
    return out


class Backend(wit_exports.Backend):
    def info(self):
        return PluginInfo(
            name=logic.NAME,
            version=logic.VERSION,
            description=logic.DESCRIPTION,
            tasks=[Task.TEXT_TO_TEXT],
            # The host inserts `Authorization: Bearer <key>`; the key never
            # enters the plugin. Use None for no key; the contract's other
            # schemes (AWS SigV4, Azure, ...) are signed by the host too.
            auth=AuthScheme_Header(AuthHeader(name="Authorization", prefix="Bearer ")),
            # Further --api-backend names this plugin answers to.
            backends=[],
        )

    def validate_params(self, params_json):
        try:
            logic.parse_params(params_json)
        except logic.Failure as e:
            raise componentize_py_types.Err(str(e))

    def build_request(self, request):
        if request.task != Task.TEXT_TO_TEXT:
            raise componentize_py_types.Err("this plugin only supports --task text-to-text")
        host.log(LogLevel.DEBUG, "building a completions request")
        try:
            path, body = logic.build_request(request.model, request.prompt, request.max_tokens,
                                             request.stream, request.params_json)
        except logic.Failure as e:
            raise componentize_py_types.Err(str(e))
        http = HttpRequest(method="POST", path=path,
                           headers=[("Content-Type", "application/json")], body=body)
        # The parser runs in another instance: anything it must know about
        # this request goes in the note (this one needs nothing).
        return BuiltRequest(http=http, parser_note="")


class ResponseParser(wit_backend.ResponseParser):
    def __init__(self, head, parser_note):
        # parser_note: what build_request returned for this request.
        self._parser = logic.Parser(head.status, head.stream)

    def feed(self, data, ends):
        # The chunks that arrived since the last call: chunk i ends at
        # ends[i] in data. One list of events per chunk.
        try:
            out, start = [], 0
            for end in ends:
                out.append(_events(self._parser.feed(data[start:end])))
                start = end
            return out
        except logic.Failure as e:
            raise componentize_py_types.Err(str(e))

    def finish(self):
        try:
            return _events(self._parser.finish())
        except logic.Failure as e:
            raise componentize_py_types.Err(str(e))
