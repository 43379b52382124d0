// Dubbo 2's fastjson serialization (serialization id 6) as http-dubbo speaks it: every value is one line of
// JSON. Request body: dubbo version, service, service version, method, parameter descriptor, one line per
// argument, then the attachments ("{}"). Response body (status OK): the response type digit (0 exception,
// 1 value, 2 null, 3-5 the same with attachments), then the value or exception line, then attachments.

export const FASTJSON = 6;

const NL = 0x0a;
const EMPTY_ATTACHMENTS = Buffer.from('{}\n');

/** The constant head of a route's requests, built at config time. */
export function requestHead(service: string, version: string, method: string, desc: string): Buffer {
  return Buffer.from(`"2.0.2"\n${JSON.stringify(service)}\n${JSON.stringify(version)}\n${JSON.stringify(method)}\n${JSON.stringify(desc)}\n`);
}

export function requestBody(head: Buffer, params: Buffer | string): Buffer {
  const p = typeof params === 'string' ? Buffer.from(params) : params;
  return Buffer.concat([head, p, EMPTY_ATTACHMENTS], head.length + p.length + EMPTY_ATTACHMENTS.length);
}

/** Client bytes already serialized by the client: sent as they are, ending with a newline. */
export function serializedParams(body: Buffer): Buffer {
  if (body.length === 0 || body[body.length - 1] === NL) return body;
  return Buffer.concat([body, Buffer.from('\n')]);
}

export type ParamsResult = { readonly ok: true; readonly params: string } | { readonly ok: false; readonly message: string };

/**
 * A JSON array (or object: its values in order) becomes one argument line per element, as APISIX's
 * non-serialized mode does.
 */
export function jsonParams(body: Buffer): ParamsResult {
  if (body.length === 0) return { ok: true, params: '' };
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch (err) {
    return { ok: false, message: `invalid JSON request body: ${(err as Error).message}` };
  }
  if (v === null || typeof v !== 'object') return { ok: false, message: 'the request body must be a JSON array or object of arguments' };
  const values = Array.isArray(v) ? v : Object.values(v);
  let out = '';
  for (const a of values) out += `${JSON.stringify(a)}\n`;
  return { ok: true, params: out };
}

export type FastjsonReply =
  | { readonly kind: 'value'; readonly json: Buffer }
  | { readonly kind: 'null' }
  /** An exception, or a response type this codec does not know. */
  | { readonly kind: 'error'; readonly type: string };

/** Reads the response type line and, for values, the value line (kept as the provider's JSON text). */
export function parseReply(body: Buffer): FastjsonReply {
  const eol = body.indexOf(NL);
  const first = body.toString('latin1', 0, eol < 0 ? body.length : eol).trim();
  const type = first.charAt(0);
  if (type === '2' || type === '5') return { kind: 'null' };
  if ((type === '1' || type === '4') && eol >= 0) {
    const end = body.indexOf(NL, eol + 1);
    return { kind: 'value', json: body.subarray(eol + 1, end < 0 ? body.length : end) };
  }
  return { kind: 'error', type: first };
}
