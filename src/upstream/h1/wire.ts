// Bytes and values of the upstream HTTP/1.1 client: request heads, response header records, and the errors it
// reports. Error codes are undici's (UND_ERR_*) or the socket's own (ECONNREFUSED, ECONNRESET...), because
// dispatch.ts's classify() turns those codes into retry and passive-health decisions whichever client ran.

export class H1ClientError extends Error {
  readonly code: string;

  constructor(message: string, code: string) {
    super(message);
    this.name = 'H1ClientError';
    this.code = code;
  }
}

export function connectTimeout(ms: number): H1ClientError {
  return new H1ClientError(`Connect Timeout Error (timeout: ${ms} ms)`, 'UND_ERR_CONNECT_TIMEOUT');
}

export function headersTimeout(): H1ClientError {
  return new H1ClientError('Headers Timeout Error', 'UND_ERR_HEADERS_TIMEOUT');
}

export function bodyTimeout(): H1ClientError {
  return new H1ClientError('Body Timeout Error', 'UND_ERR_BODY_TIMEOUT');
}

/** The upstream closed (FIN or reset without an errno) before the response ended. */
export function otherSideClosed(): H1ClientError {
  return new H1ClientError('other side closed', 'UND_ERR_SOCKET');
}

export function closedError(): H1ClientError {
  return new H1ClientError('The client is closed', 'UND_ERR_CLOSED');
}

export function destroyedError(): H1ClientError {
  return new H1ClientError('The client is destroyed', 'UND_ERR_DESTROYED');
}

export function invalidArgument(what: string): H1ClientError {
  return new H1ClientError(`invalid ${what}`, 'UND_ERR_INVALID_ARG');
}

export function lengthMismatch(): H1ClientError {
  return new H1ClientError('Request body length does not match content-length header', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
}

/** A response llhttp refused; the code is llhttp's (HPE_*): a protocol failure, never retried. */
export function parseFailure(code: string, reason: string | undefined): H1ClientError {
  return new H1ClientError(`upstream response rejected: ${reason ?? code}`, code);
}

// Request heads -------------------------------------------------------------------------------------------------

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Field values may hold HTAB, SP, visible ASCII and obs-text; CR, LF and NUL would split or end the head. */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** Anything from '!' to 0xff: no space, no control byte in a request target. */
const BAD_PATH = /[^\u0021-\u00ff]/;
const DIGITS = /^\d{1,15}$/;

/** Methods whose semantics define a request body: they get `content-length: 0` when the body is empty. */
export function expectsPayload(method: string): boolean {
  return method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'QUERY' || method === 'PROPFIND' || method === 'PROPPATCH';
}

/** What requestHead() learnt besides the head (module scratch: heads are built synchronously, one at a time). */
export const headInfo = {
  /** The `content-length` header the caller set (-1: none), used to frame a streamed body. */
  contentLength: -1,
  error: null as H1ClientError | null,
};

/**
 * The request line and header lines, each ending in CRLF, without the framing header (content-length or
 * transfer-encoding) and the blank line: the caller appends those once it knows the body. Headers the client
 * owns (host when present is written first, connection, framing, upgrade, expect) are not copied from `headers`.
 * Returns '' and sets headInfo.error on a header or target that would corrupt the head.
 */
export function requestHead(
  method: string, path: string, headers: Record<string, string | string[] | undefined> | null | undefined,
  defaultHost: string, close: boolean,
): string {
  // hot path
  headInfo.contentLength = -1;
  headInfo.error = null;
  if (BAD_PATH.test(path) || path.length === 0) return fail(invalidArgument('request path'));
  if (!TOKEN.test(method)) return fail(invalidArgument('request method'));
  let host: string | undefined;
  let lines = '';
  if (headers !== null && headers !== undefined) {
    for (const name in headers) {
      const v = headers[name];
      if (v === undefined) continue;
      let kind = NAME_KIND.get(name);
      if (kind === undefined) {
        kind = nameKind(name);
        if (NAME_KIND.size < NAME_CACHE_MAX) NAME_KIND.set(name, kind);
      }
      if (kind !== N_PLAIN) {
        if (kind === N_HOST) {
          host = Array.isArray(v) ? v[0] : v;
          continue;
        }
        if (kind === N_LENGTH) {
          const s = String(Array.isArray(v) ? v[0] : v).trim();
          if (!DIGITS.test(s)) return fail(invalidArgument('content-length header'));
          headInfo.contentLength = Number(s);
          continue;
        }
        if (kind === N_OWNED) continue;
        return fail(invalidArgument(`header name ${JSON.stringify(name)}`));
      }
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          const one = v[i]!;
          if (BAD_VALUE.test(one)) return fail(invalidArgument(`${name} header`));
          lines += `${name}: ${one}\r\n`;
        }
      } else {
        if (BAD_VALUE.test(v)) return fail(invalidArgument(`${name} header`));
        lines += `${name}: ${v}\r\n`;
      }
    }
  }
  if (host === undefined) host = defaultHost;
  else if (BAD_VALUE.test(host)) return fail(invalidArgument('host header'));
  return `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\nconnection: ${close ? 'close' : 'keep-alive'}\r\n${lines}`;
}

const N_PLAIN = 0;
const N_HOST = 1;
const N_LENGTH = 2;
/** Managed by the client (connection, framing, upgrade, expect): never copied. */
const N_OWNED = 3;
const N_INVALID = 4;
export const OWNED: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'expect', 'proxy-connection']);
/** Methods a request may be sent twice with (nginx proxy_next_upstream without non_idempotent). */
export const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * What each request header name is, validated once: names come from a handful of plugins and clients, and a
 * lookup of an object key (interned, hash cached) costs less than lowercasing and a token check per request.
 */
const NAME_KIND = new Map<string, number>();
const NAME_CACHE_MAX = 2048;

function nameKind(name: string): number {
  if (!TOKEN.test(name)) return N_INVALID;
  const lower = name.toLowerCase();
  if (lower === 'host') return N_HOST;
  if (lower === 'content-length') return N_LENGTH;
  return OWNED.has(lower) ? N_OWNED : N_PLAIN;
}

function fail(err: H1ClientError): string {
  headInfo.error = err;
  return '';
}

// Response heads ------------------------------------------------------------------------------------------------

/** Header lines from llhttp (name, value, name, value...) as undici hands them over: lowercase names, repeats in arrays. */
export function headerRecord(raw: readonly string[]): Record<string, string | string[]> {
  // hot path
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const k = lowerName(raw[i]!);
    const v = raw[i + 1]!;
    const prev = out[k];
    if (typeof prev === 'string') out[k] = [prev, v];
    else if (Array.isArray(prev)) prev.push(v);
    // New, or a name the record inherits (`constructor` reads a function, `__proto__` Object.prototype, which
    // had no push(): the response failed).
    else out[k] = v;
  }
  return out;
}

/** Response header names as llhttp spells them -> their lowercase, interned form (an upstream sends few names). */
const LOWER = new Map<string, string>();

function lowerName(raw: string): string {
  let k = LOWER.get(raw);
  if (k === undefined) {
    // A property key is interned: stores under it later skip the string-table lookup of a fresh string.
    k = Object.keys({ [raw.toLowerCase()]: 0 })[0]!;
    if (LOWER.size < NAME_CACHE_MAX) LOWER.set(raw, k);
  }
  return k;
}

const CLOSE_TOKEN = /(?:^|,)[\t ]*close[\t ]*(?:,|$)/i;
const KEEP_ALIVE_TOKEN = /(?:^|,)[\t ]*keep-alive[\t ]*(?:,|$)/i;
const KA_TIMEOUT = /(?:^|[\s,;])timeout[\t ]*=[\t ]*(\d+)/i;

/** Whether a `Connection` header value allows another request on the connection (for HTTP/1.x `minor`). */
export function connectionReusable(value: string | string[] | undefined, minor: number): boolean {
  if (value === undefined) return minor >= 1;
  const v = Array.isArray(value) ? value.join(',') : value;
  if (CLOSE_TOKEN.test(v)) return false;
  return minor >= 1 || KEEP_ALIVE_TOKEN.test(v);
}

/** The `timeout=N` hint of a `Keep-Alive` response header, in ms (-1: none). */
export function keepAliveHint(value: string | string[] | undefined): number {
  if (value === undefined) return -1;
  const m = KA_TIMEOUT.exec(Array.isArray(value) ? value.join(',') : value);
  return m === null ? -1 : Number(m[1]) * 1000;
}
