"""The plugin's logic: OpenAI-style text completions (POST /v1/completions,
choices[0].text), streamed as server-sent events or not. Replace it with
your API's format; it uses no bindings, so `python3 -m unittest` runs it.

Events are plain tuples: ("content", text), ("usage", prompt, completion),
("error", code, message), ("end",).
"""

import json

NAME = "{{name}}"
VERSION = "0.1.0"
DESCRIPTION = "OpenAI-style text completions (/v1/completions), streaming or not"


class Failure(Exception):
    """A message for the host: becomes the `err` case of the WIT result."""


def parse_params(params_json):
    if not params_json.strip():
        return {}
    try:
        params = json.loads(params_json)
    except ValueError:
        params = None
    if not isinstance(params, dict):
        raise Failure(
            'additional request params must be a JSON object such as {"temperature": 0.7}, got '
            + params_json
        )
    return params


def build_request(model, prompt, max_tokens, stream, params_json):
    """The path (under --api-base) and JSON body bytes of one request."""
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "stream": stream}
    for key, value in parse_params(params_json).items():
        # Streaming follows --disable-streaming, not the params.
        if key != "stream":
            body[key] = value
    if stream:
        body["stream_options"] = {"include_usage": True}
    return "/v1/completions", json.dumps(body).encode()


def _json_events(value, out):
    if not isinstance(value, dict):
        return
    err = value.get("error")
    if err is not None:
        if isinstance(err, dict):
            code = err.get("code") if isinstance(err.get("code"), int) else None
            out.append(("error", code, str(err.get("message", err))))
        else:
            out.append(("error", None, str(err)))
        return
    choices = value.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        text = choices[0].get("text")
        if isinstance(text, str) and text:
            out.append(("content", text))
    usage = value.get("usage")
    if isinstance(usage, dict):
        out.append(("usage", usage.get("prompt_tokens"), usage.get("completion_tokens")))


def _sse_line(line, out):
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise Failure(f"invalid UTF-8 in the stream: {e}")
    if not text.startswith("data:"):
        return  # blank lines, comments, other SSE fields
    data = text[5:].strip()
    if data == "[DONE]":
        out.append(("end",))
        return
    try:
        value = json.loads(data)
    except ValueError as e:
        raise Failure(f"malformed JSON in the stream: {e}")
    _json_events(value, out)


class Parser:
    """Incremental parser. Events depend only on the bytes, never on how
    they were split: complete lines are parsed as they arrive."""

    def __init__(self, status, stream):
        self.ok = 200 <= status < 300
        self.status = status
        self.stream = stream
        self.buf = bytearray()

    def feed(self, chunk):
        self.buf += chunk
        out = []
        if self.ok and self.stream:
            while True:
                i = self.buf.find(b"\n")
                if i < 0:
                    break
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                _sse_line(line, out)
        return out

    def finish(self):
        rest = bytes(self.buf)
        self.buf = bytearray()
        out = []
        if not self.ok:
            message = rest.decode("utf-8", "replace").strip()[:500]
            out.append(("error", self.status, message))
        elif self.stream:
            _sse_line(rest, out)
        else:
            try:
                value = json.loads(rest)
            except ValueError as e:
                raise Failure(f"the response body is not JSON: {e}")
            _json_events(value, out)
            out.append(("end",))
        return out
