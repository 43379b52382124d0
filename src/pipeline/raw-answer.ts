// Complete HTTP/1.1 answers written straight to a connection, for catalog entries answered where no pipeline
// response exists: the codecs' refusals before a request is parsed, and a tunnel whose upstream went away before
// its response head (the client's socket is already taken over). The connection is closed after them.
import { STATUS_CODES } from 'node:http';
import { ERRORS, type ErrorCode } from '../errors.ts';
import { errorPage } from './respond.ts';

const cache = new Map<ErrorCode, string>();

/**
 * The catalog entry of a request an HTTP/1.1 codec refuses, from its error code (llhttp's HPE_*, node:http's
 * ERR_HTTP_REQUEST_TIMEOUT): the one mapping of both engines (node:http's clientError, the socket engine's
 * parse errors), so a malformed request gets the same answer on either.
 */
export function refusalCode(errCode: string | undefined): ErrorCode {
  switch (errCode) {
    case 'HPE_HEADER_OVERFLOW':
      return 'SWY_ERR_HEADER_TOO_LARGE';
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 'SWY_ERR_REQUEST_TIMEOUT';
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      // node's parser caps a body's chunk extensions at 16 KiB (CVE-2024-22019; not configurable). nginx skips
      // extensions of any length and proxies the request, so there is no nginx answer to copy: this is node's
      // own status (413), with nginx's page for a body it refuses as too large.
      return 'SWY_ERR_BODY_TOO_LARGE';
    default:
      return 'SWY_ERR_BAD_REQUEST';
  }
}

/** The answer of a 'bare' or 'html' entry (built once per code): no body, or nginx's error page. */
export function rawAnswer(code: ErrorCode): string {
  let a = cache.get(code);
  if (a !== undefined) return a;
  const spec = ERRORS[code] as { status: number; reply: string };
  if (spec.reply !== 'bare' && spec.reply !== 'html') throw new Error(`${code} has no raw HTTP/1.1 answer`);
  const head = `HTTP/1.1 ${spec.status} ${STATUS_CODES[spec.status] ?? ''}\r\nConnection: close\r\n`;
  if (spec.reply === 'bare') a = `${head}Content-Length: 0\r\n\r\n`;
  else {
    const page = errorPage(spec.status);
    a = `${head}Content-Type: text/html; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(page)}\r\n\r\n${page}`;
  }
  cache.set(code, a);
  return a;
}
