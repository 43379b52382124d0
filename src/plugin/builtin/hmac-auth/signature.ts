// The APISIX 3.x hmac-auth wire format (docs/en/latest/plugins/hmac-auth.md, apisix/plugins/hmac-auth.lua):
//   Authorization: Signature keyId="<id>",algorithm="hmac-sha256",headers="@request-target date",signature="<b64>"
// signing string = keyId "\n" then, for each listed header present in the request, "<name>: <value>\n"
// ("@request-target" is "<METHOD> <request_uri>"); signature = base64(HMAC(secret_key, signing string)).
import { createHmac } from 'node:crypto';

export const HMAC_ALGORITHMS = ['hmac-sha1', 'hmac-sha256', 'hmac-sha512'] as const;

const NODE_DIGEST: Readonly<Record<string, string>> = {
  'hmac-sha1': 'sha1',
  'hmac-sha256': 'sha256',
  'hmac-sha512': 'sha512',
};

export interface SignatureParams {
  keyId?: string;
  algorithm?: string;
  signature?: string;
  headers?: string[];
}

// Lua `%s*(%w+)="(.-)"`, searched (not anchored) within each comma-separated field.
const FIELD = /\s*([A-Za-z0-9]+)="([\s\S]*?)"/;

/**
 * The parameters of an Authorization value that starts with "Signature" (the caller checks the prefix).
 * As in APISIX, fields are split on every comma, so a value cannot contain one.
 */
export function parseSignatureParams(authorization: string): SignatureParams {
  const params: SignatureParams = {};
  for (const field of authorization.slice(10).split(',')) {
    const m = FIELD.exec(field);
    if (m === null) continue;
    const key = m[1]!;
    const value = m[2]!;
    if (key === 'keyId' || key === 'algorithm' || key === 'signature') params[key] = value;
    else if (key === 'headers') params.headers = value.split(' ').filter((h) => h !== '');
  }
  return params;
}

/** The request as the signing string sees it. */
export interface SignedRequest {
  readonly method: string;
  /** The request URI as the client sent it (path and query). */
  readonly requestUri: string;
  header(lowerName: string): string | undefined;
}

export function signingString(keyId: string, headers: readonly string[] | undefined, req: SignedRequest): string {
  let s = keyId + '\n';
  for (const h of headers ?? []) {
    const v = req.header(h.toLowerCase());
    if (v !== undefined) s += `${h}: ${v}\n`;
    else if (h === '@request-target') s += `${req.method} ${req.requestUri === '' ? '/' : req.requestUri}\n`;
  }
  return s;
}

/** HMAC of the signing string; `algorithm` must be one of HMAC_ALGORITHMS. */
export function computeSignature(algorithm: string, secret: string, signing: string): Buffer {
  const digest = NODE_DIGEST[algorithm];
  if (digest === undefined) throw new Error(`unsupported hmac algorithm ${algorithm}`);
  return createHmac(digest, secret).update(signing).digest();
}

const MONTHS: Readonly<Record<string, number>> = {
  Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11,
};
// The three HTTP-date forms nginx's ngx_parse_http_time reads: RFC 1123, RFC 850 and asctime.
const RFC1123 = /^[A-Za-z]+, (\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const RFC850 = /^[A-Za-z]+, (\d{2})-([A-Z][a-z]{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const ASCTIME = /^[A-Za-z]+ ([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

/** Seconds since the epoch of an HTTP-date, or null when it is not one. */
export function parseHttpDate(s: string): number | null {
  // Normalised to [day, month, year, hour, minute, second].
  let f: readonly string[];
  let m = RFC1123.exec(s);
  if (m !== null) f = [m[1]!, m[2]!, m[3]!, m[4]!, m[5]!, m[6]!];
  else if ((m = RFC850.exec(s)) !== null) f = [m[1]!, m[2]!, String(Number(m[3]) < 70 ? 2000 + Number(m[3]) : 1900 + Number(m[3])), m[4]!, m[5]!, m[6]!];
  else if ((m = ASCTIME.exec(s)) !== null) f = [m[2]!, m[1]!, m[6]!, m[3]!, m[4]!, m[5]!];
  else return null;
  const month = MONTHS[f[1]!];
  const [d, year, h, mi, se] = [Number(f[0]), Number(f[2]), Number(f[3]), Number(f[4]), Number(f[5])];
  if (month === undefined || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59) return null;
  const ms = Date.UTC(year, month, d, h, mi, se);
  // Date.UTC rolls 31 Feb over into March; nginx rejects such days.
  if (new Date(ms).getUTCDate() !== d) return null;
  return ms / 1000;
}
