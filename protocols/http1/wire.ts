// Small wire-format helpers of the socket HTTP/1.1 engine: cached status lines, a Date header refreshed at most
// once per second, raw error answers, and request-header folding with node:http's duplicate rules.
import { STATUS_CODES } from 'node:http';
import type { ErrorCode } from '../../src/errors.ts';
import { rawAnswer as catalogAnswer } from '../../src/pipeline/raw-answer.ts';
import type { HeaderMap } from '../../src/plugin/context.ts';

const lines: string[] = [];

export function statusLine(status: number): string {
  const l = lines[status];
  if (l !== undefined) return l;
  const s = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  if (status >= 100 && status < 1000) lines[status] = s;
  return s;
}

let dateSec = 0;
let dateLine = '';

/** `date: <IMF-fixdate>\r\n`, rebuilt when the second changes. */
export function dateHeader(): string {
  const now = Date.now();
  const sec = (now / 1000) | 0;
  if (sec !== dateSec) {
    dateSec = sec;
    dateLine = `date: ${new Date(now).toUTCString()}\r\n`;
  }
  return dateLine;
}

/**
 * The catalog entry behind a status the engine answers itself: one that refusalCode() (src/pipeline/raw-answer.ts)
 * gave a parse error, 431/400 for a head refused after parsing, 408 for a head not received in time.
 */
function codeOfStatus(status: number): ErrorCode {
  switch (status) {
    case 408:
      return 'SWY_ERR_REQUEST_TIMEOUT';
    case 413:
      return 'SWY_ERR_BODY_TOO_LARGE';
    case 431:
      return 'SWY_ERR_HEADER_TOO_LARGE';
    default:
      return 'SWY_ERR_BAD_REQUEST';
  }
}

/** A complete answer the engine gives itself (refused requests, timeouts): the catalog's, as on the node engine. */
export function rawAnswer(status: number): string {
  return catalogAnswer(codeOfStatus(status));
}

/**
 * Adds one request header the way node:http's IncomingMessage does: set-cookie as a list, duplicates of
 * single-valued fields dropped (the first wins), cookie joined with '; ', any other field joined with ', '.
 */
export function addHeader(map: HeaderMap, name: string, value: string): void {
  const cur = map[name];
  // A name the map inherits (`constructor`, `tostring`...) reads a function, not a value: the field is new.
  if (typeof cur !== 'string' && !Array.isArray(cur)) {
    map[name] = name === 'set-cookie' ? [value] : value;
    return;
  }
  switch (name) {
    case 'set-cookie':
      (cur as string[]).push(value);
      return;
    case 'content-type':
    case 'content-length':
    case 'user-agent':
    case 'referer':
    case 'host':
    case 'authorization':
    case 'proxy-authorization':
    case 'if-modified-since':
    case 'if-unmodified-since':
    case 'from':
    case 'location':
    case 'max-forwards':
    case 'retry-after':
    case 'etag':
    case 'last-modified':
    case 'server':
    case 'age':
    case 'expires':
      return;
    case 'cookie':
      map[name] = `${cur as string}; ${value}`;
      return;
    default:
      map[name] = `${cur as string}, ${value}`;
  }
}
