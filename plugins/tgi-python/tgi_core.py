"""Hugging Face Text Generation Inference (TGI) format: pure logic.

Builds `/generate` and `/generate_stream` requests and parses their
responses into plain events. Nothing here imports the WIT bindings, so the
module runs (and is unit-tested) on any CPython; `backend.py` converts
between these plain values and the bindings.

Events are tuples:
    ("content", text)
    ("usage", prompt_tokens or None, completion_tokens or None)
    ("error", code or None, message)
    ("end",)
"""

import json

PLUGIN_NAME = "tgi"
PLUGIN_VERSION = "0.1.0"
PLUGIN_DESCRIPTION = (
    "Hugging Face Text Generation Inference: /generate_stream (SSE) and "
    "/generate (JSON), images as markdown in inputs (Python plugin)"
)

# Keys of TGI's `parameters` object (text-generation-inference router,
# GenerateParameters); they are passed through as given.
TGI_PARAMETERS = frozenset(
    [
        "adapter_id",
        "best_of",
        "decoder_input_details",
        "details",
        "do_sample",
        "frequency_penalty",
        "grammar",
        "max_new_tokens",
        "repetition_penalty",
        "return_full_text",
        "seed",
        "stop",
        "temperature",
        "top_k",
        "top_n_tokens",
        "top_p",
        "truncate",
        "typical_p",
        "watermark",
    ]
)

# Keys the host adds for fixed-output scenarios (`min_tokens = max_tokens`,
# `ignore_eos`); TGI has neither, so they are dropped without a warning.
SCENARIO_KEYS = frozenset(["min_tokens", "ignore_eos"])

EXAMPLE = """'{"temperature": 0.7, "top_p": 0.9}'"""
SHOWN_VALUE_CHARS = 120
QUOTE_CHARS = 200
HTTP_ERROR_CHARS = 500
HTTP_ERROR_BODY_CAP = 1 << 20
EMPTY_BODY = "empty response body"


def truncate(text, limit):
    """At most `limit` characters of `text`, marked when cut."""
    return text if len(text) <= limit else text[:limit] + "..."


def show(value):
    """A bad value as JSON text, shortened for an error message."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return truncate(text, SHOWN_VALUE_CHARS)


class Failure(Exception):
    """A refused request or an unreadable response; the message is for the user."""


def parse_params(params_json):
    """The params JSON as a dict; empty text counts as `{}`."""
    if not params_json.strip():
        return {}
    try:
        value = json.loads(params_json)
    except ValueError as e:
        raise Failure(
            "additional request params must be a JSON object such as %s, but they "
            "are not valid JSON (%s): %s"
            % (EXAMPLE, e, truncate(params_json.strip(), SHOWN_VALUE_CHARS))
        )
    if not isinstance(value, dict):
        raise Failure(
            "additional request params must be a JSON object such as %s, got %s"
            % (EXAMPLE, show(value))
        )
    return value


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_positive_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def check_params(params, warn):
    """Checks the keys this plugin interprets; `warn(msg)` gets one line per
    key that is accepted but not sent. Raises Failure."""
    for key in ("max_new_tokens", "max_tokens"):
        v = params.get(key)
        if v is not None and not _is_positive_int(v):
            raise Failure(
                "`%s` must be a positive integer (e.g. 256) or null, got %s" % (key, show(v))
            )
    if "temperature" in params:
        t = params["temperature"]
        if not _is_number(t) or t < 0:
            raise Failure(
                "`temperature` must be a number >= 0 (e.g. 0.7), got %s" % show(t)
            )
        if t == 0:
            warn(
                "`temperature: 0` is not sent: TGI refuses it and decodes greedily "
                "when no temperature is given"
            )
    if "top_p" in params:
        p = params["top_p"]
        if not _is_number(p) or not 0 < p <= 1:
            raise Failure("`top_p` must be a number in (0, 1], got %s" % show(p))
    if "top_k" in params and not _is_positive_int(params["top_k"]):
        raise Failure(
            "`top_k` must be a positive integer, got %s" % show(params["top_k"])
        )
    if "stop" in params:
        s = params["stop"]
        if not (isinstance(s, str) or (isinstance(s, list) and all(isinstance(x, str) for x in s))):
            raise Failure(
                "`stop` must be a string or a list of strings, got %s" % show(s)
            )
    if "stream" in params:
        warn(
            "`stream` in additional request params is ignored: streaming follows "
            "--disable-streaming"
        )
    for key in sorted(params):
        if key in TGI_PARAMETERS or key in SCENARIO_KEYS or key in ("max_tokens", "stream"):
            continue
        warn(
            "`%s` is not a TGI generation parameter and is not sent; TGI knows: %s"
            % (key, ", ".join(sorted(TGI_PARAMETERS)))
        )


def build_parameters(params, max_tokens):
    """TGI's `parameters` object: max_new_tokens from the params (`max_new_tokens`
    or `max_tokens`) else the scenario, `details: true` so the server reports
    token counts, then every known TGI parameter as given."""
    out = {}
    max_new = params.get("max_new_tokens")
    if max_new is None:
        max_new = params.get("max_tokens")
    if max_new is None:
        max_new = max_tokens
    if max_new is not None:
        out["max_new_tokens"] = max_new
    out["details"] = True
    for key, value in params.items():
        if key not in TGI_PARAMETERS or key == "max_new_tokens":
            continue
        if key == "temperature" and value == 0:
            continue
        if key == "stop" and isinstance(value, str):
            value = [value]
        out[key] = value
    return out


def build_inputs(task, prompt, messages, image_urls):
    """TGI's `inputs`: the prompt (a conversation is joined, one message per
    paragraph); images go first as markdown `![](data:...)`, which TGI's
    vision-language models read."""
    if messages:
        text = "\n\n".join(content for _role, content in messages)
    else:
        text = prompt
    if task == "image-text-to-text":
        return "".join("![](%s)" % url for url in image_urls) + text
    return text


def build_request(task, prompt, messages, image_urls, max_tokens, stream, params_json):
    """(method, path, headers, body bytes) for one benchmark request."""
    if task == "text-to-embeddings":
        raise Failure(
            "the TGI plugin does not support text-to-embeddings; TGI serves "
            "embeddings through text-embeddings-inference, use another backend"
        )
    if task == "image-text-to-text" and not image_urls:
        raise Failure("image-text-to-text request without images")
    params = parse_params(params_json)
    check_params(params, lambda _msg: None)
    body = {
        "inputs": build_inputs(task, prompt, messages, image_urls),
        "parameters": build_parameters(params, max_tokens),
    }
    headers = [("Content-Type", "application/json")]
    if stream:
        headers.append(("Accept", "text/event-stream"))
        path = "/generate_stream"
    else:
        path = "/generate"
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return ("POST", path, headers, data)


# ---------------------------------------------------------------- responses


def _count(v):
    """A non-negative whole number, else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int) and v >= 0:
        return v
    if isinstance(v, float) and v >= 0 and v == int(v):
        return int(v)
    return None


def _usage(details):
    """Usage from TGI `details`: generated_tokens, and the prompt length from
    `input_length`/`prompt_tokens` (newer servers) or the prefill tokens
    (with `decoder_input_details`)."""
    if not isinstance(details, dict):
        return None
    prompt = _count(details.get("input_length"))
    if prompt is None:
        prompt = _count(details.get("prompt_tokens"))
    prefill = details.get("prefill")
    if prompt is None and isinstance(prefill, list) and prefill:
        prompt = len(prefill)
    completion = _count(details.get("generated_tokens"))
    if prompt is None and completion is None:
        return None
    return ("usage", prompt, completion)


def _error_event(obj, code):
    """TGI's `{"error": "...", "error_type": "..."}`."""
    err = obj.get("error")
    if isinstance(err, str):
        message = err
    elif isinstance(err, dict) and isinstance(err.get("message"), str):
        message = err["message"]
        if code is None and _count(err.get("code")) is not None:
            code = err["code"]
    else:
        message = json.dumps(err)
    kind = obj.get("error_type")
    if isinstance(kind, str) and kind:
        message = "%s (%s)" % (message, kind)
    return ("error", code, message)


def _quote(data):
    return truncate(data.decode("utf-8", "replace"), QUOTE_CHARS)


class Parser:
    """Incremental parser for one TGI response. Events depend only on the
    bytes, never on how they were split: SSE is handled per complete line,
    bytes are buffered until then, and a non-streamed body is parsed whole
    at `finish`."""

    HTTP_ERROR, WHOLE, DETECT, SSE, DONE = range(5)

    def __init__(self, status, headers, stream, log=None):
        self.status = status
        self.log = log or (lambda _level, _msg: None)
        self.buf = bytearray()
        self.failed = None
        if not 200 <= status < 300:
            self.state = Parser.HTTP_ERROR
        elif stream:
            self.state = Parser.DETECT
        else:
            self.state = Parser.WHOLE

    def feed(self, chunk):
        """Events of the complete lines so far."""
        return self._run(lambda out: self._feed(bytes(chunk), out))

    def finish(self):
        """Events of what is still buffered, at the end of the body."""
        def go(out):
            self._finish(out)
            self.state = Parser.DONE
            self.buf = bytearray()
        return self._run(go)

    def _run(self, step):
        # The first error is reported once the events found before it have
        # been returned, then repeated: same events however the body splits.
        if self.failed is not None:
            raise Failure(self.failed)
        out = []
        try:
            step(out)
        except Failure as e:
            self.failed = str(e)
            if not out:
                raise
        return out

    def _feed(self, chunk, out):
        if self.state == Parser.WHOLE:
            self.buf += chunk
        elif self.state == Parser.HTTP_ERROR:
            room = HTTP_ERROR_BODY_CAP - len(self.buf)
            if room > 0:
                self.buf += chunk[:room]
        elif self.state == Parser.DETECT:
            self.buf += chunk
            self._detect(out)
        elif self.state == Parser.SSE:
            self._lines(chunk, out)

    def _detect(self, out):
        head = bytes(self.buf).lstrip()
        if not head:
            return
        if head[:1] in (b"{", b"["):
            self.log("warn", "streaming was requested but the server sent one JSON body; "
                     "parsing it whole at the end")
            self.state = Parser.WHOLE
            return
        self.log("debug", "streaming response: server-sent events")
        self.state = Parser.SSE
        data = bytes(self.buf)
        self.buf = bytearray()
        self._lines(data, out)

    def _finish(self, out):
        if self.state == Parser.DETECT:
            if not bytes(self.buf).strip():
                raise Failure(EMPTY_BODY)
            self._detect(out)
        data = bytes(self.buf)
        if self.state == Parser.HTTP_ERROR:
            out.append(self._http_error(data))
        elif self.state == Parser.WHOLE:
            self._whole(data, out)
        elif self.state == Parser.SSE and data:
            self._line(data, out)

    def _lines(self, data, out):
        self.buf += data
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i < 0:
                break
            self._line(bytes(self.buf[start:i]), out)
            start = i + 1
        if start:
            del self.buf[:start]

    def _line(self, line, out):
        line = line.rstrip(b"\r").lstrip(b" \t")
        # Comments, blank lines and the other SSE fields carry nothing.
        if not line.startswith(b"data:"):
            return
        payload = line[5:]
        if payload.startswith(b" "):
            payload = payload[1:]
        payload = payload.strip()
        if not payload:
            return
        if payload == b"[DONE]":
            out.append(("end",))
            return
        try:
            obj = json.loads(payload.decode("utf-8", "replace"))
        except ValueError:
            raise Failure("malformed JSON in event stream: %s" % _quote(payload))
        if not isinstance(obj, dict):
            return
        if obj.get("error") is not None:
            out.append(_error_event(obj, None))
            return
        token = obj.get("token")
        if isinstance(token, dict) and not token.get("special"):
            text = token.get("text")
            if isinstance(text, str) and text:
                out.append(("content", text))
        details = obj.get("details")
        usage = _usage(details)
        if usage:
            out.append(usage)
        # The last event carries the whole text (and details when asked for).
        if obj.get("generated_text") is not None or isinstance(details, dict):
            out.append(("end",))

    def _whole(self, data, out):
        text = data.strip()
        if not text:
            raise Failure(EMPTY_BODY)
        try:
            obj = json.loads(text.decode("utf-8", "replace"))
        except ValueError:
            self.log("warn", "response body is not JSON; using it as plain text")
            out.append(("content", text.decode("utf-8", "replace")))
            out.append(("end",))
            return
        # The Hugging Face Inference API wraps the answer in a list.
        if isinstance(obj, list) and obj and isinstance(obj[0], dict):
            obj = obj[0]
        if not isinstance(obj, dict):
            raise Failure(
                "response JSON has no generated_text: %s" % _quote(text)
            )
        if obj.get("error") is not None:
            out.append(_error_event(obj, None))
            return
        generated = obj.get("generated_text")
        if not isinstance(generated, str):
            raise Failure(
                "response JSON has no generated_text: %s" % _quote(text)
            )
        if generated:
            out.append(("content", generated))
        usage = _usage(obj.get("details"))
        if usage:
            out.append(usage)
        out.append(("end",))

    def _http_error(self, data):
        text = data.decode("utf-8", "replace").strip()
        message = text
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and obj.get("error") is not None:
            message = _error_event(obj, None)[2]
        elif isinstance(obj, dict) and isinstance(obj.get("message"), str):
            message = obj["message"]
        message = truncate(message.strip(), HTTP_ERROR_CHARS) or EMPTY_BODY
        return ("error", self.status, message)
