"""Unit tests of the logic, run natively: python3 -m unittest -q test_logic"""

import json
import unittest

import logic


def parse(status, stream, chunks):
    p = logic.Parser(status, stream)
    out = []
    for c in chunks:
        out += p.feed(c)
    return out + p.finish()


class Tests(unittest.TestCase):
    def test_request_body(self):
        path, body = logic.build_request("m", "Hi", 8, True, '{"temperature": 0.5, "stream": false}')
        self.assertEqual(path, "/v1/completions")
        self.assertEqual(
            json.loads(body),
            {"model": "m", "prompt": "Hi", "max_tokens": 8, "stream": True,
             "temperature": 0.5, "stream_options": {"include_usage": True}},
        )
        with self.assertRaises(logic.Failure):
            logic.build_request("m", "Hi", None, False, "[1]")

    def test_split_anywhere(self):
        body = ('data: {"choices":[{"text":"Hé"}]}\n\n'
                'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1}}\n\n'
                "data: [DONE]\n\n").encode()
        whole = parse(200, True, [body])
        self.assertEqual(whole, [("content", "Hé"), ("usage", 2, 1), ("end",)])
        for k in range(1, len(body)):
            self.assertEqual(parse(200, True, [body[:k], body[k:]]), whole)

    def test_errors(self):
        self.assertEqual(parse(500, True, [b"boom\n"]), [("error", 500, "boom")])
        with self.assertRaises(logic.Failure):
            parse(200, False, [b"not json"])


if __name__ == "__main__":
    unittest.main()
