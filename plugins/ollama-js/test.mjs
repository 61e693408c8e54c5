// Unit tests of the Ollama logic under plain Node (the build script runs
// them before componentizing); the e2e tests run the built component
// through the real host.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import * as core from './ollama-core.js';

function req(over = {}) {
  return {
    task: 'text-to-text', model: 'llama3.2', prompt: 'Hello', messages: [], imageUrls: [],
    maxTokens: 10, stream: true, paramsJson: '{}', ...over,
  };
}
const body = (r) => JSON.parse(new TextDecoder().decode(core.buildRequest(r).body));

function parse(bytes, cuts, { status = 200, stream = true } = {}) {
  const p = new core.Parser(status, stream);
  const out = [];
  let pos = 0;
  for (const c of [...cuts, bytes.length]) {
    out.push(...p.feed(bytes.subarray(pos, c)));
    pos = c;
  }
  return [...out, ...p.finish()];
}

test('chat request', () => {
  const r = req({ paramsJson: '{"temperature": 0.5, "top_k": 4, "min_tokens": 10, "ignore_eos": true, "keep_alive": "5m", "options": {"num_ctx": 4096}}' });
  const http = core.buildRequest(r);
  assert.equal(http.path, '/api/chat');
  assert.deepEqual(body(r), {
    model: 'llama3.2', messages: [{ role: 'user', content: 'Hello' }], stream: true,
    options: { num_predict: 10, temperature: 0.5, top_k: 4, num_ctx: 4096 }, keep_alive: '5m',
  });
});

test('generate request with images', () => {
  const r = req({ task: 'image-text-to-text', stream: false, imageUrls: ['data:image/jpeg;base64,QUJD'], paramsJson: '{"use_prompt_format": true}' });
  assert.equal(core.buildRequest(r).path, '/api/generate');
  assert.deepEqual(body(r), { model: 'llama3.2', prompt: 'Hello', images: ['QUJD'], stream: false, options: { num_predict: 10, temperature: 0 } });
  const chat = body(req({ task: 'image-text-to-text', imageUrls: ['data:image/png;base64,AA'] }));
  assert.deepEqual(chat.messages, [{ role: 'user', content: 'Hello', images: ['AA'] }]);
});

test('bad params', () => {
  for (const bad of ['[1]', 'x', '{"use_prompt_format": 1}', '{"temperature": -1}', '{"options": 3}', '{"max_tokens": 0}']) {
    assert.throws(() => core.buildRequest(req({ paramsJson: bad })), core.Failure, bad);
  }
  const warned = [];
  core.checkParams({ stream: true, foo: 1, min_tokens: 3 }, (m) => warned.push(m));
  assert.equal(warned.length, 2);
});

const STREAM = new TextEncoder().encode(
  '{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"Hel"},"done":false}\n' +
  '{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"lo é"},"done":false}\n' +
  '{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"length","total_duration":1,"prompt_eval_count":5,"eval_count":2}\n');

test('NDJSON stream is split-invariant', () => {
  const want = [{ kind: 'content', text: 'Hel' }, { kind: 'content', text: 'lo é' }, { kind: 'usage', prompt: 5, completion: 2 }, { kind: 'end' }];
  for (let k = 0; k <= STREAM.length; k++) assert.deepEqual(parse(STREAM, [k]), want, `split at ${k}`);
});

test('errors', () => {
  const enc = (s) => new TextEncoder().encode(s);
  assert.deepEqual(parse(enc('{"error":"model \\"x\\" not found, try pulling it first"}'), [], { status: 404 }),
    [{ kind: 'error', code: 404, message: 'model "x" not found, try pulling it first' }]);
  assert.deepEqual(parse(enc('{"response":"a","done":false}\n{"error":"out of memory"}\n'), [3]),
    [{ kind: 'content', text: 'a' }, { kind: 'error', code: undefined, message: 'out of memory' }]);
  const p = new core.Parser(200, true);
  assert.deepEqual(p.feed(enc('{"response":"a","done":false}\n{oops\n')), [{ kind: 'content', text: 'a' }]);
  assert.throws(() => p.finish(), core.Failure);
});
