#!/usr/bin/env python3
"""Record what genai-bench 0.0.5's own user classes send and parse.

Run with the genai-bench venv's python:

    target/py-genai-bench/bin/python tests/wire/genai_bench_wire.py BACKEND TASK [--stream|--no-stream]
        [--model M] [--framing real|ndjson] [--gcp-auth service-account|api-key]
        [--azure-auth api-key|ad-token]

It starts a recording HTTP/1.1 server on 127.0.0.1 (plus an HTTPS one for
gcp-vertex, whose base URL genai-bench hard-codes), drives the user class the
genai-bench CLI picks for --api-backend BACKEND exactly as the CLI wires it
(same auth factory, same class attributes, same task method), answers with a
canned response in the backend's own wire format containing the text
" one two three four five" and usage (prompt 7, completion 5), and prints one
JSON object: the request genai-bench sent and what its user class parsed.

Only credential plumbing is faked (fake keys, a generated RSA key and OCI
config, a service-account file whose token_uri is the recording server, an
AWS endpoint env var, and name resolution of the Vertex host to 127.0.0.1).
Request building, serialisation, signing and response parsing are
genai-bench's (and its SDKs') own code.

Exit codes: 0 captured; 3 unsupported combination; 1 nothing reached the
server or the harness itself failed; 2 usage error.
"""

import os
import sys

# --- environment set-up before anything imports ssl/requests -------------
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# boto3 (aws-bedrock) and google-auth (gcp-vertex service account) are
# genai-bench's optional extras [aws] / [gcp]; they live in a side directory
# so the genai-bench venv itself stays as tests/setup.sh made it.  Appended
# (not prepended) so the venv's own urllib3/cryptography win.
EXTRAS = os.environ.get(
    "GENAI_WIRE_EXTRAS", os.path.join(REPO, "target", "py-wire-extras")
)
if os.path.isdir(EXTRAS):
    sys.path.append(EXTRAS)
sys.path.insert(0, HERE)

for _k in list(os.environ):
    if _k.lower() in ("http_proxy", "https_proxy", "all_proxy"):
        del os.environ[_k]
os.environ["NO_PROXY"] = "*"
os.environ["no_proxy"] = "*"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Keep boto3 away from any real ~/.aws and from instance metadata.
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
for _k in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
           "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION",
           "OPENAI_API_KEY", "TOGETHER_API_KEY", "AZURE_OPENAI_API_KEY",
           "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_DEPLOYMENT", "AZURE_AD_TOKEN",
           "GCP_PROJECT_ID", "GCP_LOCATION", "GOOGLE_APPLICATION_CREDENTIALS",
           "GCP_API_KEY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
    os.environ.pop(_k, None)

# stdout carries only the final JSON; anything genai-bench/locust prints goes
# to stderr.
REAL_STDOUT = sys.stdout
sys.stdout = sys.stderr

# locust (imported by every genai-bench user) gevent-monkey-patches the
# process on import; it must come before ssl/requests are imported.
import locust  # noqa: E402,F401

import argparse  # noqa: E402
import base64  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import struct  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import zlib  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

from wire_matrix import NOT_GENAI_BENCH, SUPPORTED  # noqa: E402

PROMPT = "Hello there"
MODEL = "test-model"
MAX_TOKENS = 5
TOKENS = [" one", " two", " three", " four", " five"]
TEXT = "".join(TOKENS)
SERVER_PROMPT_TOKENS = 7  # deliberately != the request's local count (2)
SERVER_COMPLETION_TOKENS = 5
LOCAL_PREFILL = 2  # what genai-bench's sampler would count for "Hello there"
COMPARTMENT = "ocid1.compartment.oc1..aaaatestcompartment"
CHUNK_DELAY = 0.01


def default_model(backend, task, stream):
    if backend == "aws-bedrock":
        if task == "text-to-embeddings":
            # genai-bench refuses (400, nothing sent) unless "titan-embed".
            return "amazon.titan-embed-test-model-v2:0"
        return "anthropic.claude-test-model-v1:0"
    if backend == "gcp-vertex" and task != "text-to-embeddings":
        return "gemini-test-model"
    return MODEL


def vertex_gemini(model):
    return "gemini" in model.lower()


# ---------------------------------------------------------------------------
# Recording server
# ---------------------------------------------------------------------------
class Reply:
    def __init__(self, status=200, headers=None, chunks=(), streamed=False,
                 preview=None, events=None):
        self.status = status
        self.headers = list(headers or [])
        self.chunks = [c if isinstance(c, bytes) else c.encode() for c in chunks]
        self.streamed = streamed
        self.preview = preview
        self.events = events


class Recorder:
    def __init__(self, responder):
        self.responder = responder
        self.records = []
        self.lock = threading.Lock()


def make_handler(recorder):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "wire-recorder"
        sys_version = ""

        def log_message(self, *args):
            pass

        def _read_body(self):
            te = (self.headers.get("Transfer-Encoding") or "").lower()
            if "chunked" in te:
                out = b""
                while True:
                    line = self.rfile.readline()
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return out, True
                    out += self.rfile.read(size)
                    self.rfile.readline()
            n = int(self.headers.get("Content-Length") or 0)
            return (self.rfile.read(n) if n else b""), False

        def _handle(self):
            body, chunked_upload = self._read_body()
            headers = {}
            for k, v in self.headers.items():
                k = k.lower()
                headers[k] = v if k not in headers else headers[k] + ", " + v
            rec = {
                "method": self.command,
                "path": self.path,
                "http_version": self.request_version,
                "headers": headers,
                "header_order": [k.lower() for k in self.headers.keys()],
                "body": body,
                "chunked_upload": chunked_upload,
                "tls": isinstance(self.connection, ssl.SSLSocket),
            }
            try:
                reply = recorder.responder(rec)
            except Exception as e:  # harness bug: answer 500, record it
                reply = Reply(500, [("Content-Type", "text/plain")],
                              [f"responder error: {e!r}"])
            rec["reply"] = reply
            with recorder.lock:
                recorder.records.append(rec)
            self.send_response(reply.status)
            for k, v in reply.headers:
                self.send_header(k, v)
            reply.chunks_written = 0
            reply.client_closed_early = False
            try:
                if reply.streamed:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for c in reply.chunks:
                        if not c:
                            continue
                        self.wfile.write(b"%x\r\n" % len(c) + c + b"\r\n")
                        self.wfile.flush()
                        reply.chunks_written += 1
                        time.sleep(CHUNK_DELAY)
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    data = b"".join(reply.chunks)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    reply.chunks_written = len(reply.chunks)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                # The client stopped reading (e.g. genai-bench breaks out of its
                # loop at the usage chunk and closes the response).
                reply.client_closed_early = True
                self.close_connection = True

        do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _handle

    return Handler


def start_server(recorder, tls_context=None):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(recorder))
    srv.daemon_threads = True
    if tls_context is not None:
        srv.socket = tls_context.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return srv, srv.server_address[1]


# ---------------------------------------------------------------------------
# Canned responses, one per backend wire format
# ---------------------------------------------------------------------------
def sse(objs, done=False, events=None, crlf=False):
    nl = "\r\n" if crlf else "\n"
    out = []
    for i, o in enumerate(objs):
        s = ""
        if events:
            s += f"event: {events[i]}{nl}"
        s += "data: " + (o if isinstance(o, str) else json.dumps(o, separators=(",", ":"))) + nl + nl
        out.append(s)
    if done:
        out.append("data: [DONE]" + nl + nl)
    return out


def json_reply(obj, headers=(), pretty=False):
    body = json.dumps(obj, indent=2) if pretty else json.dumps(obj, separators=(",", ":"))
    return Reply(200, [("Content-Type", "application/json")] + list(headers), [body])


def openai_usage():
    return {"prompt_tokens": SERVER_PROMPT_TOKENS,
            "completion_tokens": SERVER_COMPLETION_TOKENS,
            "total_tokens": SERVER_PROMPT_TOKENS + SERVER_COMPLETION_TOKENS}


def openai_chat_stream(model, flavor):
    base = {"id": "chatcmpl-test", "object": "chat.completion.chunk",
            "created": 1700000000, "model": model}
    objs = []
    if flavor == "azure":
        # Azure's first event: prompt filter results, empty choices.
        objs.append({"choices": [], "created": 0, "id": "", "model": "",
                     "object": "", "prompt_filter_results": [
                         {"prompt_index": 0, "content_filter_results": {}}]})
    objs.append(dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""},
                                     "finish_reason": None}]))
    for t in TOKENS:
        objs.append(dict(base, choices=[{"index": 0, "delta": {"content": t},
                                         "finish_reason": None}]))
    if flavor == "together":
        # Together: finish_reason and usage in the same last chunk.
        objs.append(dict(base, choices=[{"index": 0, "delta": {"content": ""},
                                         "finish_reason": "length"}],
                         usage=openai_usage()))
    else:
        objs.append(dict(base, choices=[{"index": 0, "delta": {},
                                         "finish_reason": "length"}]))
        objs.append(dict(base, choices=[], usage=openai_usage()))
    return Reply(200, [("Content-Type", "text/event-stream; charset=utf-8"),
                       ("Cache-Control", "no-cache")],
                 sse(objs, done=True), streamed=True)


def openai_chat_json(model):
    return json_reply({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT},
                     "finish_reason": "length"}],
        "usage": openai_usage()})


def openai_embeddings(model):
    return json_reply({"object": "list", "model": model,
                       "data": [{"object": "embedding", "index": 0,
                                 "embedding": [0.125, -0.25, 0.5]}],
                       "usage": {"prompt_tokens": SERVER_PROMPT_TOKENS,
                                 "total_tokens": SERVER_PROMPT_TOKENS}})


def vllm_rerank(model):
    # vLLM's RerankResponse: usage carries only total_tokens.
    return json_reply({"id": "rerank-test", "model": model,
                       "usage": {"total_tokens": SERVER_PROMPT_TOKENS},
                       "results": [{"index": 0, "document": {"text": "one two three"},
                                    "relevance_score": 0.875}]})


TINY_PNG_B64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
                "DwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def openai_images():
    return json_reply({"created": 1700000000,
                       "data": [{"b64_json": TINY_PNG_B64,
                                 "revised_prompt": "Hello there (revised)"}]})


AUDIO = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 12  # 3082 bytes


def openai_speech():
    chunks = [AUDIO[i:i + 1000] for i in range(0, len(AUDIO), 1000)]
    return Reply(200, [("Content-Type", "audio/mpeg")], chunks, streamed=True,
                 preview=f"<{len(AUDIO)} bytes audio/mpeg in {len(chunks)} chunks>")


def cohere_chat_stream():
    events, objs = [], []
    events.append("message-start")
    objs.append({"id": "cohere-test", "type": "message-start",
                 "delta": {"message": {"role": "assistant", "content": [],
                                       "tool_plan": "", "tool_calls": [], "citations": []}}})
    events.append("content-start")
    objs.append({"type": "content-start", "index": 0,
                 "delta": {"message": {"content": {"type": "text", "text": ""}}}})
    for t in TOKENS:
        events.append("content-delta")
        objs.append({"type": "content-delta", "index": 0,
                     "delta": {"message": {"content": {"text": t}}}})
    events.append("content-end")
    objs.append({"type": "content-end", "index": 0})
    events.append("message-end")
    objs.append({"type": "message-end", "delta": {
        "finish_reason": "MAX_TOKENS",
        "usage": {"billed_units": {"input_tokens": SERVER_PROMPT_TOKENS,
                                   "output_tokens": SERVER_COMPLETION_TOKENS},
                  "tokens": {"input_tokens": SERVER_PROMPT_TOKENS,
                             "output_tokens": SERVER_COMPLETION_TOKENS}}}})
    return Reply(200, [("Content-Type", "text/event-stream")],
                 sse(objs, events=events), streamed=True)


def cohere_embed(images):
    return json_reply({"id": "embed-test", "embeddings": {"float": [[0.125, -0.25, 0.5]]},
                       "texts": [] if images else [PROMPT],
                       "meta": {"api_version": {"version": "2"},
                                "billed_units": {"input_tokens": SERVER_PROMPT_TOKENS}},
                       "response_type": "embeddings_by_type"})


# --- OCI GenAI (SDK answers: SSE for chat, JSON for embed/rerank) ---------
def oci_headers(ct):
    return [("Content-Type", ct), ("opc-request-id", "test-request-id")]


def oci_cohere_v1_stream():
    objs = [{"apiFormat": "COHERE", "text": t} for t in TOKENS]
    objs.append({"apiFormat": "COHERE", "text": TEXT, "finishReason": "MAX_TOKENS"})
    return Reply(200, oci_headers("text/event-stream"), sse(objs), streamed=True)


def oci_cohere_v2_stream():
    objs = [{"apiFormat": "COHEREV2", "message": {"role": "ASSISTANT",
                                                  "content": [{"type": "TEXT", "text": t}]}}
            for t in TOKENS]
    objs.append({"apiFormat": "COHEREV2", "finishReason": "MAX_TOKENS",
                 "usage": {"promptTokens": SERVER_PROMPT_TOKENS,
                           "completionTokens": SERVER_COMPLETION_TOKENS,
                           "totalTokens": SERVER_PROMPT_TOKENS + SERVER_COMPLETION_TOKENS}})
    return Reply(200, oci_headers("text/event-stream"), sse(objs), streamed=True)


def oci_generic_stream():
    objs = [{"index": 0, "message": {"role": "ASSISTANT",
                                     "content": [{"type": "TEXT", "text": t}]}}
            for t in TOKENS]
    objs.append({"index": 0, "message": {"role": "ASSISTANT", "content": []},
                 "finishReason": "length"})
    objs.append({"usage": {"completionTokens": SERVER_COMPLETION_TOKENS,
                           "promptTokens": SERVER_PROMPT_TOKENS,
                           "totalTokens": SERVER_PROMPT_TOKENS + SERVER_COMPLETION_TOKENS}})
    return Reply(200, oci_headers("text/event-stream"), sse(objs), streamed=True)


def oci_embed(model, images):
    return Reply(200, oci_headers("application/json"), [json.dumps({
        "id": "embed-test", "embeddings": [[0.125, -0.25, 0.5]],
        "texts": [] if images else [PROMPT], "modelId": model, "modelVersion": "1.0",
        "inputType": "IMAGE" if images else "SEARCH_DOCUMENT"})])


def oci_rerank(model):
    return Reply(200, oci_headers("application/json"), [json.dumps({
        "id": "rerank-test", "modelId": model, "modelVersion": "1.0",
        "documentRanks": [{"index": 0, "document": "one two three",
                           "relevanceScore": 0.875}]})])


# --- AWS Bedrock: application/vnd.amazon.eventstream ------------------------
def es_header(name, value):
    n, v = name.encode(), value.encode()
    return struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v


def es_message(headers, payload):
    hb = b"".join(es_header(k, v) for k, v in headers)
    total = 12 + len(hb) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hb))
    msg = prelude + struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF) + hb + payload
    return msg + struct.pack(">I", zlib.crc32(msg) & 0xFFFFFFFF)


def bedrock_family(model):
    m = model.lower()
    for f in ("claude", "titan", "llama"):
        if f in m:
            return f
    return "generic"


def bedrock_metrics():
    return {"inputTokenCount": SERVER_PROMPT_TOKENS,
            "outputTokenCount": SERVER_COMPLETION_TOKENS,
            "invocationLatency": 120, "firstByteLatency": 40}


def bedrock_stream_chunks(model):
    fam = bedrock_family(model)
    if fam == "claude":
        c = [{"type": "message_start", "message": {
            "id": "msg_test", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": SERVER_PROMPT_TOKENS, "output_tokens": 1}}},
            {"type": "content_block_start", "index": 0,
             "content_block": {"type": "text", "text": ""}}]
        c += [{"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": t}} for t in TOKENS]
        c += [{"type": "content_block_stop", "index": 0},
              {"type": "message_delta", "delta": {"stop_reason": "max_tokens",
                                                  "stop_sequence": None},
               "usage": {"output_tokens": SERVER_COMPLETION_TOKENS}},
              {"type": "message_stop", "amazon-bedrock-invocationMetrics": bedrock_metrics()}]
        return c
    if fam == "titan":
        c = [{"outputText": t, "index": 0, "totalOutputTextTokenCount": i + 1,
              "completionReason": None,
              "inputTextTokenCount": SERVER_PROMPT_TOKENS if i == 0 else None}
             for i, t in enumerate(TOKENS)]
        c[-1]["completionReason"] = "LENGTH"
        c[-1]["amazon-bedrock-invocationMetrics"] = bedrock_metrics()
        return c
    if fam == "llama":
        c = [{"generation": t, "prompt_token_count": SERVER_PROMPT_TOKENS if i == 0 else None,
              "generation_token_count": i + 1, "stop_reason": None}
             for i, t in enumerate(TOKENS)]
        c[-1]["stop_reason"] = "length"
        c[-1]["amazon-bedrock-invocationMetrics"] = bedrock_metrics()
        return c
    # generic: Cohere Command-R style top-level "text" (the field genai-bench reads)
    c = [{"is_finished": False, "event_type": "text-generation", "text": t} for t in TOKENS]
    c.append({"is_finished": True, "event_type": "stream-end", "finish_reason": "MAX_TOKENS",
              "amazon-bedrock-invocationMetrics": bedrock_metrics()})
    return c


def bedrock_json_body(model):
    fam = bedrock_family(model)
    if fam == "claude":
        return {"id": "msg_test", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": TEXT}], "stop_reason": "max_tokens",
                "stop_sequence": None,
                "usage": {"input_tokens": SERVER_PROMPT_TOKENS,
                          "output_tokens": SERVER_COMPLETION_TOKENS}}
    if fam == "titan":
        return {"inputTextTokenCount": SERVER_PROMPT_TOKENS,
                "results": [{"tokenCount": SERVER_COMPLETION_TOKENS, "outputText": TEXT,
                             "completionReason": "LENGTH"}]}
    if fam == "llama":
        return {"generation": TEXT, "prompt_token_count": SERVER_PROMPT_TOKENS,
                "generation_token_count": SERVER_COMPLETION_TOKENS, "stop_reason": "length"}
    return {"response_id": "test", "text": TEXT, "generation_id": "test",
            "finish_reason": "MAX_TOKENS", "chat_history": []}


def bedrock_headers(ct):
    return [("Content-Type", ct), ("x-amzn-RequestId", "00000000-test"),
            ("X-Amzn-Bedrock-Input-Token-Count", str(SERVER_PROMPT_TOKENS)),
            ("X-Amzn-Bedrock-Output-Token-Count", str(SERVER_COMPLETION_TOKENS))]


def bedrock_stream(model):
    chunks, events = [], []
    for i, obj in enumerate(bedrock_stream_chunks(model)):
        raw = json.dumps(obj, separators=(",", ":")).encode()
        payload = json.dumps({"bytes": base64.b64encode(raw).decode(),
                              "p": "abcdefghijklmnopqrstuvwxyz"[: (i % 7) + 1]},
                             separators=(",", ":")).encode()
        chunks.append(es_message([(":event-type", "chunk"),
                                  (":content-type", "application/json"),
                                  (":message-type", "event")], payload))
        events.append(obj)
    h = [("Content-Type", "application/vnd.amazon.eventstream"),
         ("x-amzn-RequestId", "00000000-test"),
         ("X-Amzn-Bedrock-Content-Type", "application/json")]
    return Reply(200, h, chunks, streamed=True,
                 preview=base64.b64encode(b"".join(chunks)[:600]).decode(),
                 events=[{"headers": {":event-type": "chunk",
                                      ":content-type": "application/json",
                                      ":message-type": "event"},
                          "payload": {"bytes": "<base64 of the object below>"},
                          "decoded_bytes": e} for e in events])


# --- GCP Vertex ------------------------------------------------------------
def gemini_chunks(model):
    c = [{"candidates": [{"content": {"role": "model", "parts": [{"text": t}]}}],
          "usageMetadata": {}, "modelVersion": model} for t in TOKENS]
    c[-1]["candidates"][0]["finishReason"] = "MAX_TOKENS"
    c[-1]["usageMetadata"] = {"promptTokenCount": SERVER_PROMPT_TOKENS,
                              "candidatesTokenCount": SERVER_COMPLETION_TOKENS,
                              "totalTokenCount": SERVER_PROMPT_TOKENS + SERVER_COMPLETION_TOKENS}
    return c


def vertex_stream(model, framing):
    objs = gemini_chunks(model)
    h = [("Content-Type", "application/json; charset=UTF-8"), ("Vary", "Origin")]
    if framing == "ndjson":
        chunks = [json.dumps(o, separators=(",", ":")) + "\n" for o in objs]
    else:
        # What Vertex returns for :streamGenerateContent without ?alt=sse: one
        # pretty-printed JSON array, elements separated by "\n,\r\n".
        pieces = [json.dumps(o, indent=2) for o in objs]
        chunks = ["[" + pieces[0]] + ["\n,\r\n" + p for p in pieces[1:]] + ["]"]
    return Reply(200, h, chunks, streamed=True)


def vertex_generate(model, framing):
    c = gemini_chunks(model)
    obj = {"candidates": [{"content": {"role": "model", "parts": [{"text": TEXT}]},
                           "finishReason": "MAX_TOKENS"}],
           "usageMetadata": c[-1]["usageMetadata"], "modelVersion": model}
    return json_reply(obj, pretty=(framing != "ndjson"))


def vertex_palm_predict():
    return json_reply({"predictions": [{"content": TEXT, "citationMetadata": {"citations": []},
                                        "safetyAttributes": {"blocked": False}}],
                       "metadata": {"tokenMetadata": {
                           "inputTokenCount": {"totalTokens": SERVER_PROMPT_TOKENS},
                           "outputTokenCount": {"totalTokens": SERVER_COMPLETION_TOKENS}}}},
                      pretty=True)


def vertex_embed_predict():
    return json_reply({"predictions": [{"embeddings": {
        "values": [0.125, -0.25, 0.5],
        "statistics": {"token_count": SERVER_PROMPT_TOKENS, "truncated": False}}}],
        "metadata": {"billableCharacterCount": len(PROMPT)}}, pretty=True)


def google_token():
    return json_reply({"access_token": "ya29.fake-access-token", "expires_in": 3599,
                       "token_type": "Bearer"})


def make_responder(backend, task, stream, model, framing):
    def respond(rec):
        path = rec["path"]
        if path.startswith("/token"):
            return google_token()
        if backend in ("openai", "vllm", "sglang", "together", "azure-openai"):
            flavor = {"azure-openai": "azure", "together": "together"}.get(backend, "openai")
            if task in ("text-to-text", "image-text-to-text"):
                return openai_chat_stream(model, flavor) if stream else openai_chat_json(model)
            if task == "text-to-embeddings":
                return openai_embeddings(model)
            if task == "text-to-rerank":
                return vllm_rerank(model)
            if task == "text-to-image":
                return openai_images()
            if task == "text-to-speech":
                return openai_speech()
        if backend == "oci-openai":
            return openai_images() if task == "text-to-image" else openai_speech()
        if backend == "cohere":
            if task == "text-to-text":
                return cohere_chat_stream()
            return cohere_embed(task == "image-to-embeddings")
        if backend in ("oci-cohere", "oci-cohere-v2", "oci-genai"):
            if task == "text-to-rerank":
                return oci_rerank(model)
            if task.endswith("embeddings"):
                return oci_embed(model, task == "image-to-embeddings")
            return {"oci-cohere": oci_cohere_v1_stream, "oci-cohere-v2": oci_cohere_v2_stream,
                    "oci-genai": oci_generic_stream}[backend]()
        if backend == "aws-bedrock":
            if "invoke-with-response-stream" in path:
                return bedrock_stream(model)
            if task == "text-to-embeddings":
                return json_reply({"embedding": [0.125, -0.25, 0.5],
                                   "inputTextTokenCount": SERVER_PROMPT_TOKENS},
                                  bedrock_headers("application/json")[1:])
            return json_reply(bedrock_json_body(model), bedrock_headers("application/json")[1:])
        if backend == "gcp-vertex":
            if ":streamGenerateContent" in path:
                return vertex_stream(model, framing)
            if ":generateContent" in path:
                return vertex_generate(model, framing)
            if task == "text-to-embeddings":
                return vertex_embed_predict()
            return vertex_palm_predict()
        return Reply(404, [("Content-Type", "text/plain")], ["no canned response"])
    return respond


# ---------------------------------------------------------------------------
# Fake credentials
# ---------------------------------------------------------------------------
def gen_rsa():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    der_pub = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    fp = ":".join(f"{b:02x}" for b in hashlib.md5(der_pub).digest())
    return key, pem, fp


def write_oci_config(tmp):
    # A fixed key (WIRE_OCI_KEY_FILE) lets a test recompute the SDK's
    # signature; RSA PKCS#1 v1.5 signatures are deterministic.
    key_path = os.environ.get("WIRE_OCI_KEY_FILE")
    if key_path:
        from cryptography.hazmat.primitives import serialization
        with open(key_path, "rb") as f:
            pem = f.read()
        key = serialization.load_pem_private_key(pem, password=None)
        der_pub = key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        fp = ":".join(f"{b:02x}" for b in hashlib.md5(der_pub).digest())
    else:
        _, pem, fp = gen_rsa()
    key_file = os.path.join(tmp, "oci_api_key.pem")
    with open(key_file, "wb") as f:
        f.write(pem)
    cfg = os.path.join(tmp, "oci_config")
    with open(cfg, "w") as f:
        f.write("[DEFAULT]\n"
                "user=ocid1.user.oc1..aaaatestuser\n"
                f"fingerprint={fp}\n"
                "tenancy=ocid1.tenancy.oc1..aaaatesttenancy\n"
                "region=us-chicago-1\n"
                f"key_file={key_file}\n")
    return cfg


def write_gcp_service_account(tmp, token_uri):
    _, pem, _ = gen_rsa()
    path = os.path.join(tmp, "sa.json")
    with open(path, "w") as f:
        json.dump({"type": "service_account", "project_id": "test-project",
                   "private_key_id": "0123456789abcdef", "private_key": pem.decode(),
                   "client_email": "wire-test@test-project.iam.gserviceaccount.com",
                   "client_id": "1234567890", "token_uri": token_uri}, f)
    return path


def make_tls_context(tmp, hostname):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID
    key, pem, _ = gen_rsa()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True,
                                         False, False), True)
            .add_extension(ski, False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           False)
            .sign(key, hashes.SHA256()))
    cert_file = os.path.join(tmp, "vertex-cert.pem")
    key_file = os.path.join(tmp, "vertex-key.pem")
    with open(cert_file, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_file, "wb") as f:
        f.write(pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx, cert_file


def redirect_host(hostname, port):
    """Resolve `hostname` (any port) to 127.0.0.1:port.  Name resolution only."""
    orig = socket.getaddrinfo

    def getaddrinfo(host, p, *a, **k):
        if host == hostname:
            return orig("127.0.0.1", port, *a, **k)
        return orig(host, p, *a, **k)

    socket.getaddrinfo = getaddrinfo


# ---------------------------------------------------------------------------
# Requests, built with genai-bench's protocol classes
# ---------------------------------------------------------------------------
def test_image_data_url():
    from PIL import Image
    from genai_bench.sampling.image import ImageSampler
    img = Image.new("RGB", (8, 8), (200, 30, 30))
    # genai-bench's own encoder (JPEG, data:image/jpeg;base64,...); no resize
    # so the capture stays small (scenario I(512,512) would resize first).
    return ImageSampler.process_image(img)


def build_request(backend, task, stream, model):
    from genai_bench import protocol as P
    params = {}
    if backend in ("oci-cohere", "oci-cohere-v2", "oci-genai", "oci-openai"):
        params["compartmentId"] = COMPARTMENT  # required, the user must pass it
    if task == "text-to-text":
        # TextSampler in scenario mode (the default) sets ignore_eos=True.
        params["ignore_eos"] = True
    if not stream and task in ("text-to-text", "image-text-to-text"):
        # The only way genai-bench turns streaming off for Azure/Bedrock/Vertex:
        # --additional-request-params '{"stream": false}'.
        params["stream"] = False
    if task == "text-to-text":
        return P.UserChatRequest(model=model, prompt=PROMPT, num_prefill_tokens=LOCAL_PREFILL,
                                 max_tokens=MAX_TOKENS, additional_request_params=params)
    if task == "image-text-to-text":
        # ImageSampler leaves num_prefill_tokens None for vision requests.
        return P.UserImageChatRequest(model=model, prompt=PROMPT, num_prefill_tokens=None,
                                      max_tokens=MAX_TOKENS, image_content=[test_image_data_url()],
                                      num_images=1, additional_request_params=params)
    if task == "text-to-embeddings":
        return P.UserEmbeddingRequest(model=model, documents=[PROMPT],
                                      num_prefill_tokens=LOCAL_PREFILL,
                                      additional_request_params=params)
    if task == "image-to-embeddings":
        return P.UserImageEmbeddingRequest(model=model, documents=[],
                                           image_content=[test_image_data_url()], num_images=1,
                                           num_prefill_tokens=None,
                                           additional_request_params=params)
    if task == "text-to-rerank":
        return P.UserReRankRequest(model=model, query=PROMPT, documents=["one two three"],
                                   num_prefill_tokens=5, additional_request_params=params)
    if task == "text-to-image":
        # Default scenario I(512,512): size "512x512", one image.
        return P.UserImageGenerationRequest(model=model, prompt=PROMPT, size="512x512",
                                            quality=None, num_images=1,
                                            additional_request_params=params)
    if task == "text-to-speech":
        return P.UserTextToSpeechRequest(model=model, input_text=PROMPT, voice="alloy",
                                         additional_request_params=params)
    raise ValueError(task)


class FakeSampler:
    """Stands in for genai-bench's Sampler: hands out the one request, and
    counts tokens by whitespace when the user class asks for an estimate."""

    def __init__(self, request):
        self.request = request
        self.estimates = []

    def sample(self, scenario):
        return self.request

    def get_token_length(self, text, add_special_tokens=False):
        n = len(text.split())
        self.estimates.append({"text": text[:200], "tokens": n})
        return n


class FakeRunner:
    def __init__(self):
        self.messages = []

    def send_message(self, name, data=None, *a, **k):
        self.messages.append((name, data))


# ---------------------------------------------------------------------------
# Driving the user class the way the CLI does
# ---------------------------------------------------------------------------
def make_auth(backend, server, tmp, args):
    from genai_bench.auth.unified_factory import UnifiedAuthFactory
    if backend in ("openai", "vllm", "sglang"):
        return UnifiedAuthFactory.create_model_auth("openai", api_key="test-key")
    if backend == "together":
        return UnifiedAuthFactory.create_model_auth("together", api_key="test-key")
    if backend in ("oci-cohere", "oci-cohere-v2", "cohere", "oci-genai", "oci-openai"):
        # CLI: --auth user_principal (default) --config-file --profile DEFAULT
        return UnifiedAuthFactory.create_model_auth(
            "oci", auth_type="user_principal", config_path=write_oci_config(tmp),
            profile="DEFAULT", token=None, region=None)
    if backend == "aws-bedrock":
        return UnifiedAuthFactory.create_model_auth(
            "aws-bedrock", access_key_id="AKIAWIRETESTKEY00000",
            secret_access_key="wire-test-secret-key", session_token=None,
            profile=None, region="us-east-1")
    if backend == "azure-openai":
        ad = args.azure_auth == "ad-token"
        return UnifiedAuthFactory.create_model_auth(
            "azure-openai", api_key=None if ad else "test-key", api_version="2024-02-01",
            azure_endpoint=server, azure_deployment="test-deploy",
            use_azure_ad=ad, azure_ad_token="test-ad-token" if ad else None)
    if backend == "gcp-vertex":
        if args.gcp_auth == "api-key":
            return UnifiedAuthFactory.create_model_auth(
                "gcp-vertex", project_id="test-project", location="us-central1",
                credentials_path=None, api_key="test-key")
        return UnifiedAuthFactory.create_model_auth(
            "gcp-vertex", project_id="test-project", location="us-central1",
            credentials_path=write_gcp_service_account(tmp, server + "/token"), api_key=None)
    raise ValueError(backend)


def floats_marked(d):
    out = {}
    for k, v in d.items():
        out[k] = "<float>" if isinstance(v, float) else v
    return out


def summarize_body(body, content_type):
    out = {"content_type": content_type, "body_length": len(body),
           "body_sha256": hashlib.sha256(body).hexdigest(),
           "body_json": None, "body_text": None}
    try:
        out["body_json"] = json.loads(body.decode("utf-8")) if body else None
    except (ValueError, UnicodeDecodeError):
        out["body_text"] = body.decode("utf-8", "replace")[:2000]
    if out["body_json"] is not None:
        out["body_raw_head"] = body[:300].decode("utf-8", "replace")
    return out


def summarize_request(rec):
    r = {"method": rec["method"], "path": rec["path"], "http_version": rec["http_version"],
         "tls": rec["tls"], "headers": rec["headers"], "header_order": rec["header_order"],
         "chunked_upload": rec["chunked_upload"]}
    r.update(summarize_body(rec["body"], rec["headers"].get("content-type")))
    return r


def summarize_reply(reply):
    data = b"".join(reply.chunks)
    ct = dict((k.lower(), v) for k, v in reply.headers).get("content-type")
    if reply.preview is not None:
        preview = reply.preview
    else:
        preview = data.decode("utf-8", "replace")[:2000]
    out = {"status": reply.status, "content_type": ct,
           "headers": {k: v for k, v in reply.headers},
           "streamed_chunked": reply.streamed, "num_chunks": len(reply.chunks),
           "body_length": len(data), "body_preview": preview,
           "chunks_written_before_client_closed": None if not getattr(
               reply, "client_closed_early", False) else reply.chunks_written}
    if ct == "application/vnd.amazon.eventstream":
        out["body_preview_encoding"] = "base64 (first 600 bytes)"
    if reply.events is not None:
        out["events"] = reply.events
    return out


def run(args):
    backend, task = args.backend.lower(), args.task.lower()
    if backend in NOT_GENAI_BENCH:
        print(NOT_GENAI_BENCH[backend], file=sys.stderr)
        return 3
    if backend not in SUPPORTED:
        print(f"unknown backend {backend!r}; genai-bench 0.0.5 backends: "
              + ", ".join(sorted(SUPPORTED)), file=sys.stderr)
        return 3
    tasks = SUPPORTED[backend]
    if task not in tasks:
        extra = ""
        if task == "text-to-rerank" and backend == "openai":
            extra = (" (OpenAIUser has a rerank method, but the CLI allows text-to-rerank only "
                     "for vllm and sglang)")
        print(f"task {task!r} is not supported by genai-bench 0.0.5 backend {backend!r}{extra}; "
              f"supported tasks: " + ", ".join(tasks), file=sys.stderr)
        return 3
    model = args.model or default_model(backend, task, args.stream)
    modes = list(tasks[task])
    if backend == "gcp-vertex" and task != "text-to-embeddings" and not vertex_gemini(model):
        modes = ["nostream"]  # :predict, streaming only exists for gemini models
    mode = {True: "stream", False: "nostream", None: modes[0]}[args.stream]
    if mode not in modes:
        print(f"{backend} {task} (model {model}) has no {mode} mode in genai-bench 0.0.5; "
              f"modes: {', '.join(modes)}; supported tasks: " + ", ".join(tasks),
              file=sys.stderr)
        return 3
    stream = mode == "stream"

    from genai_bench.cli.validation import API_BACKEND_USER_MAP

    tmp = tempfile.mkdtemp(prefix="genai-wire-")
    recorder = Recorder(make_responder(backend, task, stream, model, args.framing))
    srv, port = start_server(recorder)
    server = f"http://127.0.0.1:{port}"
    api_base = server
    vertex_host = "us-central1-aiplatform.googleapis.com"
    if backend == "gcp-vertex":
        ctx, cert_file = make_tls_context(tmp, vertex_host)
        tls_srv, tls_port = start_server(recorder, ctx)
        redirect_host(vertex_host, tls_port)
        os.environ["REQUESTS_CA_BUNDLE"] = cert_file
    if backend == "aws-bedrock":
        # boto3's documented per-service endpoint override; genai-bench builds
        # the client without endpoint_url.
        os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = server
    if backend == "oci-openai":
        api_base = server + "/openai/v1"  # OCI's OpenAI-compatible base path

    user_class = API_BACKEND_USER_MAP[backend]
    # Keep wire_matrix.py honest against genai-bench's own declarations (the
    # CLI additionally allows text-to-rerank only for vllm/sglang).
    declared = {t for t in user_class.supported_tasks
                if t != "text-to-rerank" or backend not in ("openai",)}
    if declared != set(tasks):
        print(f"wire_matrix.py disagrees with {user_class.__name__}.supported_tasks: "
              f"{sorted(declared)} vs {sorted(tasks)}", file=sys.stderr)
        return 1
    task_method_name = user_class.supported_tasks[task]
    request = build_request(backend, task, stream, model)

    from locust.env import Environment
    auth_provider = make_auth(backend, server, tmp, args)
    # Exactly what cli.benchmark() does to the class.
    user_class.auth_provider = auth_provider
    user_class.host = api_base
    user_class.api_backend = backend
    env = Environment(user_classes=[user_class])
    env.sampler = FakeSampler(request)
    env.scenario = "wire-test"
    env.runner = FakeRunner()

    result = {"backend": backend, "task": task, "stream": stream,
              "variant": {"model": model, "framing": args.framing,
                          "gcp_auth": args.gcp_auth if backend == "gcp-vertex" else None,
                          "azure_auth": args.azure_auth if backend == "azure-openai" else None},
              "user_class": user_class.__name__, "task_method": task_method_name,
              "api_base": api_base.replace(str(port), "PORT"),
              "server_port": port,
              "request_in": json.loads(request.model_dump_json())}
    # Images are long; keep the capture readable.
    for k in ("image_content",):
        if k in result["request_in"]:
            result["request_in"][k] = [s[:60] + "...(%d chars)" % len(s)
                                       for s in result["request_in"][k]]

    collected = []
    user = user_class(env)
    orig_collect = user.collect_metrics

    def collect_metrics(user_response, endpoint):
        collected.append((user_response, endpoint))
        try:
            orig_collect(user_response, endpoint)
        except Exception as e:  # noqa: BLE001
            collected.append(("collect_metrics_exception", repr(e)))

    user.collect_metrics = collect_metrics

    exception = None
    try:
        user.on_start()
        getattr(user, task_method_name)()
    except Exception as e:  # noqa: BLE001
        exception = {"type": type(e).__name__, "message": str(e)[:1000],
                     "traceback_tail": traceback.format_exc().strip().splitlines()[-6:]}
    time.sleep(0.05)

    with recorder.lock:
        records = list(recorder.records)
    main = [r for r in records if not r["path"].startswith("/token")]
    other = [r for r in records if r["path"].startswith("/token")]
    result["request"] = summarize_request(main[-1]) if main else None
    result["response_sent"] = summarize_reply(main[-1]["reply"]) if main else None
    result["requests_received"] = len(records)
    if len(main) > 1:
        result["earlier_requests"] = [summarize_request(r) for r in main[:-1]]
    if other:
        result["auth_requests"] = [dict(summarize_request(r),
                                        response_sent=summarize_reply(r["reply"]))
                                   for r in other]

    parsed = {"exception": exception}
    ur = None
    for item in collected:
        if item[0] == "collect_metrics_exception":
            parsed["collect_metrics_exception"] = item[1]
        else:
            ur, parsed["metrics_endpoint_name"] = item
    if ur is not None:
        d = json.loads(ur.model_dump_json())
        parsed["response_class"] = type(ur).__name__
        parsed["time_at_first_token_present"] = d.pop("time_at_first_token") is not None
        parsed["start_time_present"] = d.pop("start_time") is not None
        parsed["end_time_present"] = d.pop("end_time") is not None
        if ur.time_at_first_token is not None and ur.start_time is not None:
            parsed["ttft_after_start"] = ur.time_at_first_token >= ur.start_time
        parsed.update(d)
    else:
        parsed["response_class"] = None
    parsed["tokenizer_estimates"] = env.sampler.estimates
    msgs = [json.loads(m[1]) for m in env.runner.messages if m[0] == "request_metrics"]
    parsed["request_metrics"] = floats_marked(msgs[-1]) if msgs else None
    result["parsed"] = parsed

    REAL_STDOUT.write(json.dumps(result, indent=2) + "\n")
    REAL_STDOUT.flush()
    srv.shutdown()
    return 0 if main else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("backend")
    ap.add_argument("task")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--stream", dest="stream", action="store_true", default=None)
    g.add_argument("--no-stream", dest="stream", action="store_false")
    ap.add_argument("--model", help="override the model id (bedrock/vertex pick the body "
                    "format from it)")
    ap.add_argument("--framing", choices=["real", "ndjson"], default="real",
                    help="gcp-vertex gemini only: 'real' = what Vertex sends for the URL "
                    "genai-bench builds (pretty JSON array / pretty object); 'ndjson' = one "
                    "compact JSON object per line (what genai-bench's parser can read)")
    ap.add_argument("--gcp-auth", choices=["service-account", "api-key"],
                    default="service-account")
    ap.add_argument("--azure-auth", choices=["api-key", "ad-token"], default="api-key")
    args = ap.parse_args()
    try:
        code = run(args)
    except SystemExit:
        raise
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        code = 1
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
