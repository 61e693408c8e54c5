"""Unit tests of the TGI logic on the build machine's CPython (the build
script runs them before componentizing); the e2e tests run the built
component through the real host."""

import json
import unittest

import tgi_core as t


def build(params="{}", stream=True, task="text-to-text", images=(), max_tokens=10):
    method, path, headers, body = t.build_request(
        task, "Hello", [], list(images), max_tokens, stream, params
    )
    return method, path, headers, json.loads(body)


def parse(body, chunks, status=200, stream=True):
    p = t.Parser(status, [], stream)
    out = []
    pos = 0
    for c in chunks:
        out += p.feed(body[pos:c])
        pos = c
    out += p.feed(body[pos:])
    return out + p.finish()


STREAM = (
    b'data:{"index":1,"token":{"id":1,"text":"Hel","logprob":-0.1,"special":false},'
    b'"generated_text":null,"details":null}\n\n'
    b'data:{"index":2,"token":{"id":2,"text":"lo \xc3\xa9","logprob":-0.1,"special":false},'
    b'"generated_text":null,"details":null}\n\n'
    b'data:{"index":3,"token":{"id":3,"text":"</s>","logprob":-0.1,"special":true},'
    b'"generated_text":"Hello \xc3\xa9","details":{"finish_reason":"eos_token",'
    b'"generated_tokens":3,"seed":null,"input_length":5}}\n\n'
)


class Requests(unittest.TestCase):
    def test_streaming_body(self):
        method, path, headers, body = build('{"temperature": 0.5, "top_k": 4, "min_tokens": 10, "ignore_eos": true}')
        self.assertEqual((method, path), ("POST", "/generate_stream"))
        self.assertIn(("Accept", "text/event-stream"), headers)
        self.assertEqual(body, {"inputs": "Hello", "parameters": {
            "max_new_tokens": 10, "details": True, "temperature": 0.5, "top_k": 4}})

    def test_non_streaming_and_overrides(self):
        _, path, headers, body = build('{"max_tokens": 7, "temperature": 0, "stop": "x", "foo": 1}', stream=False)
        self.assertEqual(path, "/generate")
        self.assertEqual(len(headers), 1)
        self.assertEqual(body["parameters"], {"max_new_tokens": 7, "details": True, "stop": ["x"]})

    def test_images_go_first_as_markdown(self):
        _, _, _, body = build(task="image-text-to-text", images=["data:image/png;base64,AA"])
        self.assertEqual(body["inputs"], "![](data:image/png;base64,AA)Hello")

    def test_bad_params(self):
        for bad in ["[1]", "nope", '{"temperature": -1}', '{"max_new_tokens": 0}', '{"top_p": 2}', '{"stop": 3}']:
            with self.assertRaises(t.Failure):
                build(bad)

    def test_warnings(self):
        warned = []
        t.check_params({"stream": True, "foo": 1, "temperature": 0, "min_tokens": 3}, warned.append)
        self.assertEqual(len(warned), 3, warned)


class Responses(unittest.TestCase):
    def test_stream_is_split_invariant(self):
        want = [("content", "Hel"), ("content", "lo é"), ("usage", 5, 3), ("end",)]
        self.assertEqual(parse(STREAM, []), want)
        for k in range(1, len(STREAM)):
            self.assertEqual(parse(STREAM, [k]), want, k)

    def test_whole_body(self):
        body = b'{"generated_text":"hi there","details":{"finish_reason":"length","generated_tokens":2,"prefill":[{"id":1},{"id":2}]}}'
        self.assertEqual(parse(body, [5], stream=False),
                         [("content", "hi there"), ("usage", 2, 2), ("end",)])

    def test_errors(self):
        body = b'{"error":"Input validation error: `inputs` must have less than 10 tokens","error_type":"validation"}'
        self.assertEqual(parse(body, [], status=422),
                         [("error", 422, "Input validation error: `inputs` must have less than 10 tokens (validation)")])
        sse = b'data:{"token":{"text":"a","special":false}}\n\ndata:{"error":"CUDA OOM","error_type":"generation"}\n\n'
        self.assertEqual(parse(sse, [9]), [("content", "a"), ("error", None, "CUDA OOM (generation)")])
        p = t.Parser(200, [], True)
        self.assertEqual(p.feed(b'data:{"token":{"text":"a"}}\n\ndata:{oops}\n'), [("content", "a")])
        with self.assertRaises(t.Failure):
            p.finish()


if __name__ == "__main__":
    unittest.main()
