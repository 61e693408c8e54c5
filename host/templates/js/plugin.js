// WIT glue of the '{{name}}' plugin: the only module that touches the bindings.
//
// componentize-js maps the exported interface `backend` to the export
// `backend` (functions in camelCase, the resource as a class), `result`
// errors to thrown values, `list<u8>` to Uint8Array, `u64` to BigInt and
// variants to `{ tag, val }`. The logic lives in logic.js.
import { log } from 'genai-bench:backend/host@{{contract}}';

import * as logic from './logic.js';

const u64 = (n) => (Number.isInteger(n) && n >= 0 ? BigInt(n) : undefined);

function events(plain) {
  return plain.map((e) => {
    switch (e.kind) {
      case 'content':
        return { tag: 'content', val: e.text };
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
    if (e instanceof logic.Failure) throw e.message;
    throw `internal error in the ${logic.NAME} plugin: ${e && e.stack ? e.stack : e}`;
  }
}

class ResponseParser {
  // parserNote: what buildRequest returned for this request.
  constructor(head, parserNote) {
    this.parser = new logic.Parser(head.status, head.stream);
  }
  // The chunks that arrived since the last call: chunk i ends at ends[i]
  // in bytes (a Uint32Array). One list of events per chunk.
  feed(bytes, ends) {
    return guard(() => {
      let start = 0;
      return Array.from(ends, (end) => {
        const chunk = bytes.subarray(start, end);
        start = end;
        return events(this.parser.feed(chunk));
      });
    });
  }
  finish() {
    return guard(() => events(this.parser.finish()));
  }
}

export const backend = {
  info() {
    return {
      name: logic.NAME,
      version: logic.VERSION,
      description: logic.DESCRIPTION,
      tasks: ['text-to-text'],
      // The host inserts `Authorization: Bearer <key>`; the key never enters
      // the plugin. Use undefined for no key; the contract's other schemes
      // (AWS SigV4, Azure, ...) are signed by the host too.
      auth: { tag: 'header', val: { name: 'Authorization', prefix: 'Bearer ' } },
      // Further --api-backend names this plugin answers to.
      backends: [],
    };
  },
  validateParams(paramsJson) {
    guard(() => logic.parseParams(paramsJson));
  },
  buildRequest(request) {
    if (request.task !== 'text-to-text') throw 'this plugin only supports --task text-to-text';
    log('debug', 'building a completions request');
    return guard(() => {
      const { path, body } = logic.buildRequest(
        request.model, request.prompt, request.maxTokens, request.stream, request.paramsJson,
      );
      // The parser runs in another instance: anything it must know about
      // this request goes in the note (this one needs nothing).
      return {
        http: { method: 'POST', path, headers: [['Content-Type', 'application/json']], body },
        parserNote: '',
      };
    });
  },
  ResponseParser,
};
