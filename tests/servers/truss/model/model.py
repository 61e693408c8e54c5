"""Synthetic, deterministic Truss model for genai-bench-rs end-to-end tests.

No upstream: the text is made from the request, and the timing from
ttft_ms / itl_ms. Every Baseten response shape the tests need is chosen per
request by fields of the JSON body (see tests/servers/README.md):

  prompt        str    words of the streamed text (default "token"); without
                       it, the text of "messages" (a chat body) is used
  max_tokens    int    number of pieces (alias max_new_tokens; default from
                       config, or len(text_pieces) when text_pieces is given)
  text_pieces   [str]  exact text of the pieces, cycled if max_tokens is larger
  stream        bool   true (default): stream; false: one JSON value
  sse           bool   stream OpenAI chat.completion.chunk SSE events
  transport     str    how a stream leaves the model (alias sse_transport):
                       "generator" (default without sse): predict returns the
                       generator, truss streams it as application/octet-stream
                       and ends the body cleanly even when it raises;
                       "response" (default with sse): predict returns a
                       starlette StreamingResponse (text/event-stream for sse,
                       else application/octet-stream); an exception mid-stream
                       then aborts the connection (no final 0-chunk)
  shape         str    stream=false: completion|openai|text|output|list|string
  ttft_ms       num    delay before the first piece (default from config)
  itl_ms        num    delay between pieces (default from config)
  fault         str    truncate|stall|error500|http_status
  stall_ms      num    how long "stall" sleeps (default 30000)
  status        int    HTTP status for fault=http_status (default 503)
  sse_role_chunk bool  SSE: send {"role":"assistant","content":""} first, at once
  finish_reason str    finish_reason of the SSE / openai shapes (default "stop")
  request_id    str    copied into the timing log
  model         str    "model" of the SSE / openai shapes

Pieces are scheduled on absolute deadlines from the time predict() starts:
piece i is yielded at start + ttft + i * itl (never earlier).

Timing log: when env TRUSS_TIMING_LOG names a file, one JSON line per request
is appended when the request finishes (or fails), with time.monotonic_ns()
stamps; CLOCK_MONOTONIC is system-wide on Linux, so they compare directly
with a client's std::time::Instant / clock_gettime(CLOCK_MONOTONIC).
"""

import hashlib
import itertools
import json
import os
import threading
import time

SSE_CREATED = 1700000000  # fixed, so output is deterministic

_LOG_LOCK = threading.Lock()
_SEQ = itertools.count(1)


class SyntheticFault(RuntimeError):
    pass


def _messages_text(messages):
    """The text of a chat body's messages (string or [{"type":"text"}] parts), joined by newlines."""
    out = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return "\n".join(out)


class Model:
    def __init__(self, **kwargs):
        config = kwargs.get("config") or {}
        meta = config.get("model_metadata") or {}
        self._name = config.get("model_name") or "synthetic"
        self._ttft_ms = float(meta.get("ttft_ms", 50))
        self._itl_ms = float(meta.get("itl_ms", 10))
        self._max_tokens = int(meta.get("max_tokens", 16))
        self._stall_ms = float(meta.get("stall_seconds", 30)) * 1000.0
        self._log_path = os.environ.get("TRUSS_TIMING_LOG") or None

    def load(self):
        pass

    # ------------------------------------------------------------ helpers
    def _log(self, record):
        if not self._log_path:
            return
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with _LOG_LOCK:
            with open(self._log_path, "a", encoding="utf-8") as f:
                f.write(line)

    @staticmethod
    def _sleep_until(deadline_ns):
        while True:
            left = deadline_ns - time.monotonic_ns()
            if left <= 0:
                return
            time.sleep(left / 1e9)

    def _plan(self, inp):
        prompt = inp.get("prompt")
        if prompt is None and isinstance(inp.get("messages"), list):
            prompt = _messages_text(inp["messages"])
        if not isinstance(prompt, str):
            prompt = "" if prompt is None else json.dumps(prompt)
        pieces_src = inp.get("text_pieces")
        if pieces_src is not None:
            if not isinstance(pieces_src, list) or not pieces_src:
                raise ValueError("text_pieces must be a non-empty list of strings")
            pieces_src = [str(p) for p in pieces_src]
        if "max_tokens" in inp:
            n = int(inp["max_tokens"])
        elif "max_new_tokens" in inp:
            n = int(inp["max_new_tokens"])
        elif pieces_src is not None:
            n = len(pieces_src)
        else:
            n = self._max_tokens
        if n < 0 or n > 100000:
            raise ValueError("max_tokens must be in 0..100000")
        if pieces_src is not None:
            pieces = [pieces_src[i % len(pieces_src)] for i in range(n)]
        else:
            words = prompt.split() or ["token"]
            pieces = [("" if i == 0 else " ") + words[i % len(words)] for i in range(n)]
        return prompt, pieces

    # ------------------------------------------------------------ truss hooks
    def preprocess(self, model_input):
        # Runs before predict_concurrency's semaphore: the closest the model
        # gets to the request's arrival.
        arrived = time.monotonic_ns()
        if not isinstance(model_input, dict):
            raise ValueError("body must be a JSON object")
        model_input = dict(model_input)
        model_input["__arrived_ns"] = arrived
        return model_input

    def predict(self, model_input):
        start_ns = time.monotonic_ns()
        arrived_ns = model_input.pop("__arrived_ns", start_ns)
        inp = model_input
        prompt, pieces = self._plan(inp)
        stream = bool(inp.get("stream", True))
        sse = stream and bool(inp.get("sse", False))
        fault = inp.get("fault")
        ttft_ms = float(inp.get("ttft_ms", self._ttft_ms))
        itl_ms = float(inp.get("itl_ms", self._itl_ms))
        stall_ms = float(inp.get("stall_ms", self._stall_ms))
        shape = inp.get("shape", "completion")
        prompt_hash = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]
        rec = {
            "seq": next(_SEQ),
            "request_id": inp.get("request_id"),
            "prompt_sha256_16": prompt_hash,
            "prompt_chars": len(prompt),
            "mode": ("sse" if sse else "stream") if stream else "json:" + str(shape),
            "fault": fault,
            "ttft_ms": ttft_ms,
            "itl_ms": itl_ms,
            "n_planned": len(pieces),
            "arrived_ns": arrived_ns,
            "predict_ns": start_ns,
            "piece_ns": [],
            "end_ns": None,
            "outcome": None,
        }
        if fault not in (None, "truncate", "stall", "error500", "http_status"):
            raise ValueError(f"unknown fault {fault!r}")
        if fault == "error500":
            rec["outcome"] = "error500"
            rec["end_ns"] = time.monotonic_ns()
            self._log(rec)
            raise SyntheticFault("synthetic fault error500 (raised before streaming)")
        if fault == "http_status":
            status = int(inp.get("status", 503))
            rec["outcome"] = f"http_status:{status}"
            rec["end_ns"] = time.monotonic_ns()
            self._log(rec)
            import fastapi

            raise fastapi.HTTPException(status_code=status, detail=f"synthetic status {status}")

        timed = self._timed(pieces, start_ns, ttft_ms, itl_ms, fault, stall_ms, rec)
        if not stream:
            text = "".join(timed)  # takes the same time as the stream would
            return self._shape(shape, text, prompt, len(pieces), inp)
        gen = self._sse(timed, prompt, inp) if sse else timed
        transport = inp.get("transport", inp.get("sse_transport", "response" if sse else "generator"))
        if transport == "generator":
            return gen
        if transport != "response":
            raise ValueError(f"unknown transport {transport!r}")
        from starlette.responses import StreamingResponse

        media_type = "text/event-stream" if sse else "application/octet-stream"
        return StreamingResponse(gen, media_type=media_type)

    # ------------------------------------------------------------ generators
    def _timed(self, pieces, start_ns, ttft_ms, itl_ms, fault, stall_ms, rec):
        n = len(pieces)
        half = n // 2
        ttft_ns = int(ttft_ms * 1e6)
        itl_ns = int(itl_ms * 1e6)
        try:
            for i, piece in enumerate(pieces):
                if fault == "truncate" and i == half:
                    rec["outcome"] = "truncated"
                    raise SyntheticFault(f"synthetic fault truncate after {i} of {n} pieces")
                if fault == "stall" and i == half:
                    rec["stall_from_ns"] = time.monotonic_ns()
                    time.sleep(stall_ms / 1000.0)
                    rec["stall_to_ns"] = time.monotonic_ns()
                    start_ns += rec["stall_to_ns"] - rec["stall_from_ns"]
                self._sleep_until(start_ns + ttft_ns + i * itl_ns)
                rec["piece_ns"].append(time.monotonic_ns())
                yield piece
            rec["outcome"] = rec["outcome"] or "complete"
        except GeneratorExit:
            rec["outcome"] = "closed"
            raise
        finally:
            rec["end_ns"] = time.monotonic_ns()
            if rec["outcome"] is None:
                rec["outcome"] = "error"
            self._log(rec)

    def _sse(self, timed, prompt, inp):
        model = inp.get("model", self._name)
        cid = "chatcmpl-" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:24]

        def event(choices, **extra):
            obj = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": SSE_CREATED,
                "model": model,
                "choices": choices,
            }
            obj.update(extra)
            return ("data: " + json.dumps(obj, separators=(",", ":")) + "\n\n").encode()

        if inp.get("sse_role_chunk", False):
            # Like OpenAI/vLLM: an immediate role chunk with empty content.
            yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        n = 0
        for piece in timed:
            delta = {"content": piece}
            if n == 0 and not inp.get("sse_role_chunk", False):
                delta = {"role": "assistant", "content": piece}
            n += 1
            yield event([{"index": 0, "delta": delta, "finish_reason": None}])
        yield event([{"index": 0, "delta": {}, "finish_reason": inp.get("finish_reason", "stop")}])
        p = len(prompt.split())
        yield event([], usage={"prompt_tokens": p, "completion_tokens": n, "total_tokens": p + n})
        yield b"data: [DONE]\n\n"

    # ------------------------------------------------------------ JSON shapes
    def _shape(self, shape, text, prompt, n, inp):
        if shape == "completion":
            return {"completion": text, "usage": {"completion_tokens": n}}
        if shape == "text":
            return {"text": text}
        if shape == "output":
            return {"output": text}
        if shape == "list":
            return [text]
        if shape == "string":
            return text
        if shape == "openai":
            p = len(prompt.split())
            return {
                "id": "chatcmpl-" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:24],
                "object": "chat.completion",
                "created": SSE_CREATED,
                "model": inp.get("model", self._name),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": inp.get("finish_reason", "stop"),
                    }
                ],
                "usage": {"prompt_tokens": p, "completion_tokens": n, "total_tokens": p + n},
            }
        raise ValueError(f"unknown shape {shape!r}")
