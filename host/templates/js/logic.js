// The plugin's logic: OpenAI-style text completions (POST /v1/completions,
// choices[0].text), streamed as server-sent events or not. Replace it with
// your API's format; it uses no bindings, so `node --test test.mjs` runs it.
//
// Events are plain objects: {kind: 'content', text}, {kind: 'usage', prompt,
// completion}, {kind: 'error', code, message}, {kind: 'end'}.

export const NAME = '{{name}}';
export const VERSION = '0.1.0';
export const DESCRIPTION = 'OpenAI-style text completions (/v1/completions), streaming or not';

/** A message for the host: becomes the `err` case of the WIT result. */
export class Failure extends Error {}

export function parseParams(paramsJson) {
  if (!paramsJson.trim()) return {};
  let params;
  try {
    params = JSON.parse(paramsJson);
  } catch {
    params = null;
  }
  if (params === null || typeof params !== 'object' || Array.isArray(params)) {
    throw new Failure(
      `additional request params must be a JSON object such as {"temperature": 0.7}, got ${paramsJson}`,
    );
  }
  return params;
}

/** The path (under --api-base) and JSON body bytes of one request. */
export function buildRequest(model, prompt, maxTokens, stream, paramsJson) {
  const body = { model, prompt, max_tokens: maxTokens ?? null, stream };
  for (const [key, value] of Object.entries(parseParams(paramsJson))) {
    // Streaming follows --disable-streaming, not the params.
    if (key !== 'stream') body[key] = value;
  }
  if (stream) body.stream_options = { include_usage: true };
  return { path: '/v1/completions', body: new TextEncoder().encode(JSON.stringify(body)) };
}

function jsonEvents(value, out) {
  if (value === null || typeof value !== 'object') return;
  const err = value.error;
  if (err !== undefined && err !== null) {
    if (typeof err === 'object') {
      const code = Number.isInteger(err.code) ? err.code : undefined;
      out.push({ kind: 'error', code, message: String(err.message ?? JSON.stringify(err)) });
    } else {
      out.push({ kind: 'error', code: undefined, message: String(err) });
    }
    return;
  }
  const choice = Array.isArray(value.choices) ? value.choices[0] : undefined;
  if (choice && typeof choice.text === 'string' && choice.text !== '') {
    out.push({ kind: 'content', text: choice.text });
  }
  const usage = value.usage;
  if (usage && typeof usage === 'object') {
    out.push({ kind: 'usage', prompt: usage.prompt_tokens, completion: usage.completion_tokens });
  }
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function sseLine(bytes, out) {
  let text;
  try {
    text = decoder.decode(bytes).trim();
  } catch (e) {
    throw new Failure(`invalid UTF-8 in the stream: ${e}`);
  }
  if (!text.startsWith('data:')) return; // blank lines, comments, other SSE fields
  const data = text.slice(5).trim();
  if (data === '[DONE]') {
    out.push({ kind: 'end' });
    return;
  }
  let value;
  try {
    value = JSON.parse(data);
  } catch (e) {
    throw new Failure(`malformed JSON in the stream: ${e}`);
  }
  jsonEvents(value, out);
}

function concat(a, b) {
  const c = new Uint8Array(a.length + b.length);
  c.set(a, 0);
  c.set(b, a.length);
  return c;
}

/** Incremental parser. Events depend only on the bytes, never on how they
 * were split: complete lines are parsed as they arrive. */
export class Parser {
  constructor(status, stream) {
    this.status = status;
    this.ok = status >= 200 && status < 300;
    this.stream = stream;
    this.buf = new Uint8Array(0);
  }

  feed(chunk) {
    this.buf = concat(this.buf, chunk);
    const out = [];
    if (this.ok && this.stream) {
      let i;
      while ((i = this.buf.indexOf(10)) >= 0) {
        const line = this.buf.slice(0, i + 1);
        this.buf = this.buf.slice(i + 1);
        sseLine(line, out);
      }
    }
    return out;
  }

  finish() {
    const rest = this.buf;
    this.buf = new Uint8Array(0);
    const out = [];
    if (!this.ok) {
      const message = new TextDecoder().decode(rest).trim().slice(0, 500);
      out.push({ kind: 'error', code: this.status, message });
    } else if (this.stream) {
      sseLine(rest, out);
    } else {
      let value;
      try {
        value = JSON.parse(new TextDecoder().decode(rest));
      } catch (e) {
        throw new Failure(`the response body is not JSON: ${e}`);
      }
      jsonEvents(value, out);
      out.push({ kind: 'end' });
    }
    return out;
  }
}
