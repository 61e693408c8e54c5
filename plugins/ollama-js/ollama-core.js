// Ollama format: pure logic. Builds /api/chat and /api/generate requests and
// parses their NDJSON (or single JSON) responses into plain events. Nothing
// here touches the WIT bindings, so the module runs under plain Node for the
// unit tests (test.mjs); plugin.js converts to and from the bindings.
//
// Events are plain objects:
//   { kind: 'content', text }   { kind: 'reasoning', text }
//   { kind: 'usage', prompt, completion }   (numbers or undefined)
//   { kind: 'error', code, message }        (code: number or undefined)
//   { kind: 'end' }

export const PLUGIN_NAME = 'ollama';
export const PLUGIN_VERSION = '0.1.0';
export const PLUGIN_DESCRIPTION =
  "Ollama: /api/chat (default) or /api/generate ({\"use_prompt_format\": true}), " +
  'NDJSON streaming or one JSON body, images (JavaScript plugin)';

// Ollama's model options (api.Options / api.Runner), sent in `options`.
export const OPTION_KEYS = new Set([
  'num_keep', 'seed', 'num_predict', 'top_k', 'top_p', 'min_p', 'typical_p',
  'repeat_last_n', 'temperature', 'repeat_penalty', 'presence_penalty',
  'frequency_penalty', 'mirostat', 'mirostat_tau', 'mirostat_eta',
  'penalize_newline', 'stop', 'tfs_z', 'numa', 'num_ctx', 'num_batch', 'num_gpu',
  'main_gpu', 'low_vram', 'vocab_only', 'use_mmap', 'use_mlock', 'num_thread',
]);
// Top-level request fields passed through as given.
export const TOP_LEVEL_KEYS = new Set([
  'format', 'keep_alive', 'think', 'tools', 'system', 'template', 'raw', 'suffix', 'context',
]);
// Keys this plugin consumes itself.
const OWN_KEYS = new Set(['use_prompt_format', 'stream', 'options', 'max_tokens', 'custom_messages']);
// Added by the host for fixed-output scenarios; Ollama has no such option.
const SCENARIO_KEYS = new Set(['min_tokens', 'ignore_eos']);

const EXAMPLE = `'{"temperature": 0.7}'`;
const SHOWN_VALUE_CHARS = 120;
const QUOTE_CHARS = 200;
const HTTP_ERROR_CHARS = 500;
const HTTP_ERROR_BODY_CAP = 1 << 20;
const EMPTY_BODY = 'empty response body';

/** A refused request or an unreadable response; the message is for the user. */
export class Failure extends Error {}

function truncate(text, max) {
  const chars = Array.from(text);
  return chars.length <= max ? text : chars.slice(0, max).join('') + '...';
}

function show(value) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch {
    text = String(value);
  }
  return truncate(text === undefined ? String(value) : text, SHOWN_VALUE_CHARS);
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isPositiveInt = (v) => Number.isInteger(v) && v > 0;

/** The params JSON as an object; empty text counts as `{}`. */
export function parseParams(paramsJson) {
  if (paramsJson.trim() === '') return {};
  let value;
  try {
    value = JSON.parse(paramsJson);
  } catch (e) {
    throw new Failure(
      `additional request params must be a JSON object such as ${EXAMPLE}, but they are ` +
        `not valid JSON (${e.message}): ${truncate(paramsJson.trim(), SHOWN_VALUE_CHARS)}`,
    );
  }
  if (!isObject(value)) {
    throw new Failure(
      `additional request params must be a JSON object such as ${EXAMPLE}, got ${show(value)}`,
    );
  }
  return value;
}

/** Whether the request goes to /api/generate (a bare prompt). */
export function usePromptFormat(params) {
  const v = params.use_prompt_format;
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') {
    throw new Failure(`\`use_prompt_format\` must be true or false, got ${show(v)}`);
  }
  return v;
}

/** Checks the keys this plugin interprets; `warn(msg)` gets a line for each
 *  key that is accepted but not sent. Throws Failure. */
export function checkParams(params, warn) {
  const promptFormat = usePromptFormat(params);
  for (const key of ['max_tokens', 'num_predict']) {
    const v = params[key] ?? (isObject(params.options) ? params.options[key] : undefined);
    if (v !== undefined && v !== null && !isPositiveInt(v) && !(key === 'num_predict' && (v === -1 || v === -2))) {
      throw new Failure(`\`${key}\` must be a positive integer (e.g. 256) or null, got ${show(v)}`);
    }
  }
  if ('temperature' in params) {
    const t = params.temperature;
    if (typeof t !== 'number' || t < 0) {
      throw new Failure(`\`temperature\` must be a number >= 0 (e.g. 0.7), got ${show(t)}`);
    }
  }
  if ('options' in params && !isObject(params.options)) {
    throw new Failure(
      `\`options\` must be an object of Ollama model options such as {"num_ctx": 4096}, got ${show(params.options)}`,
    );
  }
  if ('custom_messages' in params) {
    const m = params.custom_messages;
    if (!Array.isArray(m) || m.length === 0) {
      throw new Failure(
        '`custom_messages` must be a non-empty array of messages such as ' +
          `[{"role": "user", "content": "Hello"}], got ${show(m)}`,
      );
    }
    m.forEach((msg, i) => {
      if (!isObject(msg) || typeof msg.role !== 'string' || typeof msg.content !== 'string') {
        throw new Failure(
          `\`custom_messages[${i}]\` must be an object with string \`role\` and \`content\`, got ${show(msg)}`,
        );
      }
    });
    if (promptFormat) {
      throw new Failure(
        '`custom_messages` cannot be used with `use_prompt_format: true`: /api/generate ' +
          'takes a single prompt; remove one of the two keys',
      );
    }
  }
  if ('stream' in params) {
    warn('`stream` in additional request params is ignored: streaming follows --disable-streaming');
  }
  for (const key of Object.keys(params).sort()) {
    if (OPTION_KEYS.has(key) || TOP_LEVEL_KEYS.has(key) || OWN_KEYS.has(key) || SCENARIO_KEYS.has(key)) {
      continue;
    }
    warn(
      `\`${key}\` is not an Ollama request field or model option and is not sent; put ` +
        `other options in "options": {...}`,
    );
  }
}

/** `data:image/png;base64,AAAA` -> `AAAA`: Ollama takes bare base64. */
export function bareBase64(url) {
  if (!url.startsWith('data:')) {
    throw new Failure(`Ollama takes images as base64 data; got an image URL that is not a data: URL: ${truncate(url, 60)}`);
  }
  const comma = url.indexOf(',');
  if (comma < 0 || !url.slice(5, comma).endsWith(';base64')) {
    throw new Failure(`image data URL is not base64-encoded: ${truncate(url, 60)}`);
  }
  return url.slice(comma + 1);
}

/** The model options: temperature 0 unless given (as genai-bench's other
 *  backends), num_predict from the params or the scenario, then every known
 *  option, then `options` as given (it wins). */
function buildOptions(params, maxTokens) {
  const options = {};
  let numPredict = params.num_predict ?? params.max_tokens ?? maxTokens;
  if (numPredict !== undefined && numPredict !== null) options.num_predict = numPredict;
  options.temperature = 0.0;
  for (const [key, value] of Object.entries(params)) {
    if (OPTION_KEYS.has(key) && key !== 'num_predict') options[key] = value;
  }
  if (isObject(params.options)) Object.assign(options, params.options);
  return options;
}

/** { method, path, headers, body: Uint8Array } for one benchmark request.
 *  `req` has task, model, prompt, messages [{role, content}], imageUrls,
 *  maxTokens (number or undefined), stream, paramsJson. */
export function buildRequest(req) {
  if (req.task === 'text-to-embeddings') {
    throw new Failure(
      'the Ollama plugin does not support text-to-embeddings (Ollama serves them at /api/embed); use another backend',
    );
  }
  const params = parseParams(req.paramsJson);
  checkParams(params, () => {});
  const promptFormat = usePromptFormat(params);
  const images = req.task === 'image-text-to-text' ? req.imageUrls.map(bareBase64) : [];
  const body = { model: req.model };
  let path;
  if (promptFormat) {
    path = '/api/generate';
    body.prompt = req.prompt;
    if (images.length) body.images = images;
  } else {
    path = '/api/chat';
    if (params.custom_messages) {
      body.messages = params.custom_messages;
    } else if (req.messages.length) {
      body.messages = req.messages.map((m) => ({ role: m.role, content: m.content }));
    } else {
      body.messages = [{ role: 'user', content: req.prompt }];
    }
    if (images.length) {
      // Images belong to the last user message.
      const last = body.messages[body.messages.length - 1];
      body.messages[body.messages.length - 1] = { ...last, images };
    }
  }
  body.stream = req.stream;
  body.options = buildOptions(params, req.maxTokens);
  for (const [key, value] of Object.entries(params)) {
    if (TOP_LEVEL_KEYS.has(key)) body[key] = value;
  }
  const headers = [['Content-Type', 'application/json']];
  if (req.stream) headers.push(['Accept', 'application/x-ndjson']);
  return { method: 'POST', path, headers, body: new TextEncoder().encode(JSON.stringify(body)) };
}

// ------------------------------------------------------------ responses

function count(v) {
  return Number.isInteger(v) && v >= 0 ? v : undefined;
}

function errorEvent(obj, code) {
  const e = obj.error;
  let message;
  if (typeof e === 'string') message = e;
  else if (isObject(e) && typeof e.message === 'string') message = e.message;
  else message = JSON.stringify(e);
  return { kind: 'error', code, message };
}

const quote = (bytes) => truncate(new TextDecoder().decode(bytes), QUOTE_CHARS);

function concat(a, b) {
  if (a.length === 0) return b.slice();
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

const NEWLINE = 10;
const State = { HTTP_ERROR: 0, WHOLE: 1, STREAM: 2, DONE: 3 };

/** Incremental parser for one Ollama response. NDJSON is handled per
 *  complete line and bytes are buffered until then, so events never depend
 *  on how the body was split; a non-streamed body is parsed at `finish`. */
export class Parser {
  constructor(status, stream, log = () => {}) {
    this.status = status;
    this.log = log;
    this.buf = new Uint8Array(0);
    this.failed = undefined;
    this.ended = false;
    if (status < 200 || status >= 300) {
      this.state = State.HTTP_ERROR;
    } else if (stream) {
      this.state = State.STREAM;
      log('debug', 'streaming response: newline-delimited JSON');
    } else {
      this.state = State.WHOLE;
    }
  }

  feed(chunk) {
    return this.run((out) => this.feedInner(chunk, out));
  }

  finish() {
    return this.run((out) => {
      this.finishInner(out);
      this.state = State.DONE;
      this.buf = new Uint8Array(0);
    });
  }

  // The first error is reported once the events found before it have been
  // returned, then repeated: the same events however the body is split.
  run(step) {
    if (this.failed !== undefined) throw new Failure(this.failed);
    const out = [];
    try {
      step(out);
    } catch (e) {
      if (!(e instanceof Failure)) throw e;
      this.failed = e.message;
      if (out.length === 0) throw e;
    }
    return out;
  }

  feedInner(chunk, out) {
    switch (this.state) {
      case State.WHOLE:
        this.buf = concat(this.buf, chunk);
        break;
      case State.HTTP_ERROR: {
        const room = HTTP_ERROR_BODY_CAP - this.buf.length;
        if (room > 0) this.buf = concat(this.buf, chunk.subarray(0, room));
        break;
      }
      case State.STREAM: {
        let data = concat(this.buf, chunk);
        let start = 0;
        for (;;) {
          const i = data.indexOf(NEWLINE, start);
          if (i < 0) break;
          this.line(data.subarray(start, i), out);
          start = i + 1;
        }
        this.buf = data.slice(start);
        break;
      }
      default:
        break;
    }
  }

  finishInner(out) {
    const data = this.buf;
    if (this.state === State.HTTP_ERROR) {
      out.push(this.httpError(data));
    } else if (this.state === State.WHOLE) {
      const text = new TextDecoder().decode(data).trim();
      if (text === '') throw new Failure(EMPTY_BODY);
      this.object(text, data, out, true);
      if (!this.ended) out.push({ kind: 'end' });
    } else if (this.state === State.STREAM) {
      if (data.length) this.line(data, out);
    }
  }

  line(bytes, out) {
    const text = new TextDecoder().decode(bytes).trim();
    if (text === '') return;
    this.object(text, bytes, out, false);
  }

  object(text, bytes, out, whole) {
    let obj;
    try {
      obj = JSON.parse(text);
    } catch {
      throw new Failure(`malformed JSON in ${whole ? 'response body' : 'NDJSON stream'}: ${quote(bytes)}`);
    }
    if (!isObject(obj)) {
      if (whole) throw new Failure(`response JSON is not an object: ${quote(bytes)}`);
      return;
    }
    if (obj.error !== undefined && obj.error !== null) {
      out.push(errorEvent(obj, undefined));
      return;
    }
    // /api/chat puts the text in message, /api/generate in response.
    const message = isObject(obj.message) ? obj.message : undefined;
    const thinking = message ? message.thinking : obj.thinking;
    if (typeof thinking === 'string' && thinking !== '') out.push({ kind: 'reasoning', text: thinking });
    const content = message ? message.content : obj.response;
    if (typeof content === 'string' && content !== '') out.push({ kind: 'content', text: content });
    if (whole && message === undefined && typeof obj.response !== 'string') {
      throw new Failure(`response JSON has neither message nor response: ${quote(bytes)}`);
    }
    if (obj.done === true) {
      const prompt = count(obj.prompt_eval_count);
      const completion = count(obj.eval_count);
      if (prompt !== undefined || completion !== undefined) {
        out.push({ kind: 'usage', prompt, completion });
      }
      out.push({ kind: 'end' });
      this.ended = true;
    }
  }

  httpError(data) {
    let message = new TextDecoder().decode(data).trim();
    try {
      const obj = JSON.parse(message);
      if (isObject(obj) && obj.error !== undefined && obj.error !== null) message = errorEvent(obj).message;
    } catch {
      // Not JSON: the text is the message.
    }
    message = truncate(message.trim(), HTTP_ERROR_CHARS) || EMPTY_BODY;
    return { kind: 'error', code: this.status, message };
  }
}
