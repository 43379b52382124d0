// One error catalog: stable codes, HTTP status, message and the shape of the reply the gateway sends itself.
// Compare errors by code, never by text. test/errors.test.ts keeps codes unique and checks every entry is
// used somewhere in the sources.
//
// `reply`: 'json' answers `{"error_msg": message}\n` (APISIX's core.response.exit with a table);
// 'html' answers nginx's error page (what APISIX sends when it exits without a body, and what nginx sends for
// malformed requests); 'bare' is a status line without a body on a connection then closed (node:http's default
// answers), for requests an HTTP/1.1 codec refuses (both engines pick the entry with refusalCode() in
// src/pipeline/raw-answer.ts);
// 'none' is for errors that never become an HTTP reply (config store, stream, startup).

export interface ErrorSpec {
  readonly status: number;
  readonly message: string;
  readonly reply: 'json' | 'html' | 'bare' | 'none';
}

export const ERRORS = {
  // Data plane, HTTP family.
  SWY_ERR_ROUTE_NOT_FOUND: { status: 404, message: '404 Route Not Found', reply: 'json' },
  SWY_ERR_BAD_REQUEST_URI: { status: 400, message: 'bad request uri', reply: 'html' },
  SWY_ERR_BAD_REQUEST_HOST: { status: 400, message: 'bad request host', reply: 'html' },
  SWY_ERR_BODY_TOO_LARGE: { status: 413, message: 'request entity too large', reply: 'html' },
  SWY_ERR_MISSING_UPSTREAM: { status: 503, message: 'missing upstream configuration in Route or Service', reply: 'json' },
  SWY_ERR_NO_UPSTREAM_NODE: { status: 502, message: 'no valid upstream node', reply: 'html' },
  SWY_ERR_UPSTREAM_UNAVAILABLE: { status: 502, message: 'upstream unavailable', reply: 'html' },
  SWY_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'upstream timed out', reply: 'html' },
  SWY_ERR_PLUGIN_FAILED: { status: 500, message: 'plugin failed', reply: 'json' },
  SWY_ERR_INTERNAL: { status: 500, message: 'internal error', reply: 'html' },
  SWY_ERR_MTLS_REQUIRED: { status: 400, message: 'No required SSL certificate was sent', reply: 'html' },
  // A route whose reference cannot be resolved, with APISIX's statuses (init.lua: a missing plugin_config 503,
  // service 404, upstream_id 502, all core.response.exit without a body).
  SWY_ERR_PLUGIN_CONFIG_NOT_FOUND: { status: 503, message: 'missing plugin config', reply: 'html' },
  SWY_ERR_SERVICE_NOT_FOUND: { status: 404, message: 'missing service', reply: 'html' },
  SWY_ERR_UPSTREAM_NOT_FOUND: { status: 502, message: 'missing upstream', reply: 'html' },
  // Refused by the HTTP/1.1 codecs before a request exists.
  SWY_ERR_BAD_REQUEST: { status: 400, message: 'malformed request', reply: 'bare' },
  SWY_ERR_REQUEST_TIMEOUT: { status: 408, message: 'request head not received in time', reply: 'bare' },
  SWY_ERR_HEADER_TOO_LARGE: { status: 431, message: 'request header fields too large', reply: 'bare' },
  // Config store and Admin API.
  SWY_ERR_STORE_UNAVAILABLE: { status: 503, message: 'config store unavailable', reply: 'none' },
  SWY_ERR_STORE_CONFLICT: { status: 503, message: 'value changed before overwritten', reply: 'none' },
  SWY_ERR_STORE_READONLY: { status: 400, message: 'config store is read-only', reply: 'none' },
  SWY_ERR_CONFIG_INVALID: { status: 400, message: 'invalid configuration', reply: 'none' },
  // Startup.
  SWY_ERR_LISTEN_FAILED: { status: 0, message: 'cannot listen', reply: 'none' },
  SWY_ERR_TLS_CONFIG: { status: 0, message: 'invalid TLS listener configuration', reply: 'none' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const spec = ERRORS[code];
    super(detail ? `${spec.message}: ${detail}` : spec.message, options);
    this.name = 'SwitchyardError';
    this.code = code;
    this.status = spec.status;
  }
}

export function isSwitchyardError(err: unknown, code?: ErrorCode): err is SwitchyardError {
  return err instanceof SwitchyardError && (code === undefined || err.code === code);
}

/** A local HTTP answer for a catalog entry (status, and a JSON body or none for nginx's HTML page). */
export interface CatalogReply {
  readonly status: number;
  readonly body?: { readonly error_msg: string };
  readonly headers?: Readonly<Record<string, string>>;
}

const REPLIES = new Map<ErrorCode, CatalogReply>();
for (const code of Object.keys(ERRORS) as ErrorCode[]) {
  const spec: ErrorSpec = ERRORS[code];
  if (spec.reply === 'none' || spec.reply === 'bare') continue;
  REPLIES.set(code, Object.freeze(spec.reply === 'json' ? { status: spec.status, body: Object.freeze({ error_msg: spec.message }) } : { status: spec.status }));
}

/** The frozen reply of an HTTP-family entry the pipeline answers ('json' or 'html'), built once at module load. */
export function catalogReply(code: ErrorCode): CatalogReply {
  const r = REPLIES.get(code);
  if (r === undefined) throw new Error(`${code} is not an HTTP reply`);
  return r;
}
