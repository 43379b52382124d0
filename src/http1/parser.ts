// Node's bundled llhttp, through the HTTP parser binding node:http itself uses (`_http_common`'s HTTPParser):
// the same C parser, the same strict defaults (no lenient flags), so the socket-level HTTP/1.1 code (the
// downstream engine in protocols/http1, the upstream client in src/upstream/h1) rejects exactly what node:http
// rejects (CL+TE, duplicate Content-Length, obs-fold, bare LF, bad chunk sizes, NUL and control bytes, oversized
// heads). Chosen over undici's llhttp wasm because it is native (no copy into wasm memory) and maintained with
// the runtime; the only private surface used is this binding's callback table, checked at load time below.
import { createRequire } from 'node:module';
import { METHODS } from 'node:http';

const require = createRequire(import.meta.url);

/** The binding's request/response parser (llhttp); callbacks are read from numeric slots on the instance. */
export interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** Bytes parsed, or an Error with `code` (`HPE_*`) and `bytesParsed`. */
  execute(data: Buffer): number | ParseError;
  finish(): number | ParseError | undefined;
  resume(): void;
  close(): void;
  free(): void;
  remove(): void;
  [slot: number]: unknown;
}

export interface ParseError extends Error {
  code: string;
  bytesParsed: number;
  reason?: string;
}

interface ParserCtor {
  new (): LlhttpParser;
  REQUEST: number;
  RESPONSE: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
  kLenientNone: number;
}

const common = require('_http_common') as { HTTPParser: ParserCtor };
export const HTTPParser: ParserCtor = common.HTTPParser;
if (typeof HTTPParser !== 'function' || typeof HTTPParser.kOnHeadersComplete !== 'number' || typeof HTTPParser.prototype.execute !== 'function') {
  throw new Error('node:_http_common HTTPParser binding not available: the socket-level HTTP/1.1 code needs it');
}

export const K_MESSAGE_BEGIN = HTTPParser.kOnMessageBegin | 0;
export const K_HEADERS = HTTPParser.kOnHeaders | 0;
export const K_HEADERS_COMPLETE = HTTPParser.kOnHeadersComplete | 0;
export const K_BODY = HTTPParser.kOnBody | 0;
export const K_MESSAGE_COMPLETE = HTTPParser.kOnMessageComplete | 0;
/** llhttp's HPE_PAUSED: returned from on_headers_complete, it stops execute() right after that head. */
export const PAUSE = 21;
/** on_headers_complete answers: body follows normally / no body, the rest of the bytes is another protocol. */
export const HEAD_OK = 0;
export const HEAD_UPGRADE = 2;

/**
 * llhttp reports the method as its enum value. The binding's name table is internal, so it is rebuilt once by
 * parsing one request per method node:http knows; a method missing here cannot be parsed by llhttp either.
 */
function methodTable(): string[] {
  const table: string[] = [];
  const p = new HTTPParser();
  let seen = -1;
  p[K_HEADERS_COMPLETE] = (_maj: number, _min: number, _h: unknown, method: number): number => {
    seen = method;
    return 1;
  };
  for (const m of METHODS) {
    p.initialize(HTTPParser.REQUEST, {}, 0, HTTPParser.kLenientNone);
    seen = -1;
    const target = m === 'CONNECT' ? 'a:1' : '/';
    p.execute(Buffer.from(`${m} ${target} HTTP/1.1\r\nhost: a\r\n\r\n`, 'latin1'));
    if (seen >= 0) table[seen] = m;
  }
  p.close();
  return table;
}

export const METHOD_NAMES: readonly string[] = methodTable();
