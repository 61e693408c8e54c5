// Unit tests of the logic, run natively: node --test test.mjs
import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as logic from './logic.js';

function parse(status, stream, chunks) {
  const p = new logic.Parser(status, stream);
  const out = [];
  for (const c of chunks) out.push(...p.feed(c));
  return [...out, ...p.finish()];
}

test('request body', () => {
  const { path, body } = logic.buildRequest('m', 'Hi', 8, true, '{"temperature": 0.5, "stream": false}');
  assert.equal(path, '/v1/completions');
  assert.deepEqual(JSON.parse(new TextDecoder().decode(body)), {
    model: 'm', prompt: 'Hi', max_tokens: 8, stream: true, temperature: 0.5,
    stream_options: { include_usage: true },
  });
  assert.throws(() => logic.buildRequest('m', 'Hi', undefined, false, '[1]'), logic.Failure);
});

test('split anywhere', () => {
  const body = new TextEncoder().encode(
    'data: {"choices":[{"text":"Hé"}]}\n\n' +
      'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1}}\n\ndata: [DONE]\n\n',
  );
  const whole = parse(200, true, [body]);
  assert.deepEqual(whole, [
    { kind: 'content', text: 'Hé' },
    { kind: 'usage', prompt: 2, completion: 1 },
    { kind: 'end' },
  ]);
  for (let k = 1; k < body.length; k++) {
    assert.deepEqual(parse(200, true, [body.slice(0, k), body.slice(k)]), whole);
  }
});

test('errors', () => {
  assert.deepEqual(parse(500, true, [new TextEncoder().encode('boom\n')]), [
    { kind: 'error', code: 500, message: 'boom' },
  ]);
  assert.throws(() => parse(200, false, [new TextEncoder().encode('not json')]), logic.Failure);
});
