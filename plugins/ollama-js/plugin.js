// WIT glue of the Ollama plugin: the only module that touches the bindings.
//
// componentize-js maps the exported interface `backend` to the export
// `backend` (functions in camelCase, the resource as a class), `result` errors
// to thrown values, `list<u8>` to Uint8Array, `u64` to BigInt and variants to
// `{ tag, val }`. Everything else lives in ollama-core.js.
//
// CONTRACT VERSION: built against contract 0.2.0 (wit/v0.2.0/, which the
// host keeps loading). The WIT package is imported below (the one line naming
// its version) and `info()` is the one place that builds a `plugin-info`.
// Porting to a newer contract touches only those two places (and
// `requestFields` for new request fields).
import { log } from 'genai-bench:backend/host@0.2.0';

import * as core from './ollama-core.js';

function hostLog(level, message) {
  log(level === 'warn' ? 'warn' : level === 'debug' ? 'debug' : 'info', message);
}

// The request fields the plugin uses, as plain values.
function requestFields(r) {
  return {
    task: r.task,
    model: r.model,
    prompt: r.prompt,
    messages: r.messages,
    imageUrls: r.imageUrls,
    maxTokens: r.maxTokens,
    stream: r.stream,
    paramsJson: r.paramsJson,
  };
}

const u64 = (n) => (n === undefined ? undefined : BigInt(n));

function events(plain) {
  return plain.map((e) => {
    switch (e.kind) {
      case 'content':
        return { tag: 'content', val: e.text };
      case 'reasoning':
        return { tag: 'reasoning', val: e.text };
      case 'usage':
        return {
          tag: 'usage',
          val: { promptTokens: u64(e.prompt), completionTokens: u64(e.completion), reasoningTokens: undefined },
        };
      case 'error':
        return { tag: 'error', val: { code: e.code, message: e.message } };
      default:
        return { tag: 'end' };
    }
  });
}

// Failures become the `err` case; anything else is a bug worth its stack.
function guard(f) {
  try {
    return f();
  } catch (e) {
    if (e instanceof core.Failure) throw e.message;
    throw `internal error in the Ollama plugin: ${e && e.stack ? e.stack : e}`;
  }
}

class ResponseParser {
  constructor(head) {
    this.parser = new core.Parser(head.status, head.stream, hostLog);
  }
  feed(chunk) {
    return guard(() => events(this.parser.feed(chunk)));
  }
  finish() {
    return guard(() => events(this.parser.finish()));
  }
}

export const backend = {
  info() {
    return {
      name: core.PLUGIN_NAME,
      version: core.PLUGIN_VERSION,
      description: core.PLUGIN_DESCRIPTION,
      tasks: ['text-to-text', 'image-text-to-text'],
      // Ollama has no authentication.
      auth: undefined,
      // `--api-backend` names besides `name`: none.
      backends: [],
    };
  },
  validateParams(paramsJson) {
    guard(() => core.checkParams(core.parseParams(paramsJson), (msg) => hostLog('warn', msg)));
  },
  buildRequest(request) {
    return guard(() => core.buildRequest(requestFields(request)));
  },
  ResponseParser,
};
