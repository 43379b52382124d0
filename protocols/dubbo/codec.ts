// Dubbo 2 wire codec (https://dubbo.apache.org/en/docs/concepts/rpc-protocol/, "dubbo" TCP protocol).
// Frame: a 16-byte header, then `bodyLength` bytes serialized as the header's serialization id says.
//   0-1  magic 0xdabb
//   2    flags: 0x80 request, 0x40 two-way, 0x20 event (heartbeat), low 5 bits serialization id (2 = hessian2)
//   3    status (responses only; 20 = OK)
//   4-11 request id, unsigned 64-bit big-endian
//   12-15 body length, unsigned 32-bit big-endian
// Request body (hessian2 values in sequence): dubbo version, service path, service version, method name,
// parameter type descriptor (JVM descriptors, e.g. "Ljava/lang/String;I"), each argument, attachments map.
// Response body with status OK: an int response type, then the value or the exception, then the attachments
// map for the *_WITH_ATTACHMENTS types. Any other status: a hessian2 string with the error message.
// Heartbeats are event requests whose body is hessian null; the answer is an event response with status OK.
import hessian from 'hessian.js';

export const HEADER_LENGTH = 16;
export const MAGIC = 0xdabb;
export const MAGIC_HIGH = 0xda;
export const MAGIC_LOW = 0xbb;
export const FLAG_REQUEST = 0x80;
export const FLAG_TWO_WAY = 0x40;
export const FLAG_EVENT = 0x20;
export const SERIALIZATION_MASK = 0x1f;
export const HESSIAN2 = 2;
/** Dubbo's default payload limit (`payload` = 8 MiB). */
export const DEFAULT_MAX_FRAME = 8 * 1024 * 1024;
/** Protocol version written in request bodies (what Dubbo 2.7 consumers send). */
export const DUBBO_VERSION = '2.0.2';

/** Response status codes (org.apache.dubbo.remoting.exchange.Response). */
export const Status = {
  OK: 20,
  CLIENT_TIMEOUT: 30,
  SERVER_TIMEOUT: 31,
  CHANNEL_INACTIVE: 35,
  BAD_REQUEST: 40,
  BAD_RESPONSE: 50,
  SERVICE_NOT_FOUND: 60,
  SERVICE_ERROR: 70,
  SERVER_ERROR: 80,
  CLIENT_ERROR: 90,
  SERVER_THREADPOOL_EXHAUSTED_ERROR: 100,
} as const;

/** The first value of an OK response body. */
export const ResponseType = {
  EXCEPTION: 0,
  VALUE: 1,
  NULL_VALUE: 2,
  EXCEPTION_WITH_ATTACHMENTS: 3,
  VALUE_WITH_ATTACHMENTS: 4,
  NULL_VALUE_WITH_ATTACHMENTS: 5,
} as const;

const HESSIAN_NULL = Buffer.from([0x4e]);

export interface FrameHeader {
  readonly flags: number;
  readonly status: number;
  readonly requestId: bigint;
  readonly bodyLength: number;
}

export interface Frame extends FrameHeader {
  readonly body: Buffer;
}

export const isRequest = (flags: number): boolean => (flags & FLAG_REQUEST) !== 0;
export const isTwoWay = (flags: number): boolean => (flags & FLAG_TWO_WAY) !== 0;
export const isEvent = (flags: number): boolean => (flags & FLAG_EVENT) !== 0;
export const serializationOf = (flags: number): number => flags & SERIALIZATION_MASK;

/** Writes a 16-byte header into `out` at `off`. */
export function writeHeader(out: Buffer, off: number, flags: number, status: number, requestId: bigint, bodyLength: number): void {
  out[off] = MAGIC_HIGH;
  out[off + 1] = MAGIC_LOW;
  out[off + 2] = flags;
  out[off + 3] = status;
  out.writeBigUInt64BE(requestId, off + 4);
  out.writeUInt32BE(bodyLength, off + 12);
}

/** A whole frame (header + body) in one buffer. */
export function encodeFrame(flags: number, status: number, requestId: bigint, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER_LENGTH + body.length);
  writeHeader(out, 0, flags, status, requestId, body.length);
  body.copy(out, HEADER_LENGTH);
  return out;
}

/** Java argument: a plain JS value (string, number as int/double, boolean, null) or hessian.js `{$class, $}`. */
export type JavaValue = unknown;

export interface RequestBody {
  readonly dubboVersion?: string;
  readonly service: string;
  readonly version?: string;
  readonly method: string;
  /** JVM parameter descriptor, e.g. "Ljava/lang/String;I". */
  readonly paramTypes: string;
  readonly args: readonly JavaValue[];
  readonly attachments?: Readonly<Record<string, string>>;
}

/** Serializes a request body; the attachments carry path, interface and version as Dubbo consumers send. */
export function encodeRequestBody(req: RequestBody): Buffer {
  const enc = new hessian.EncoderV2();
  enc.write(req.dubboVersion ?? DUBBO_VERSION);
  enc.write(req.service);
  enc.write(req.version ?? '');
  enc.write(req.method);
  enc.write(req.paramTypes);
  for (const a of req.args) enc.write(a);
  const att: Record<string, string> = { ...req.attachments, path: req.service, interface: req.service };
  if (req.version !== undefined && req.version !== '') att.version = req.version;
  enc.write({ $class: 'java.util.HashMap', $: att });
  return enc.get();
}

export function encodeRequest(requestId: bigint, req: RequestBody, twoWay = true): Buffer {
  return encodeFrame(FLAG_REQUEST | (twoWay ? FLAG_TWO_WAY : 0) | HESSIAN2, 0, requestId, encodeRequestBody(req));
}

export function encodeHeartbeat(requestId: bigint): Buffer {
  return encodeFrame(FLAG_REQUEST | FLAG_TWO_WAY | FLAG_EVENT | HESSIAN2, 0, requestId, HESSIAN_NULL);
}

export function encodeHeartbeatResponse(requestId: bigint, serialization = HESSIAN2): Buffer {
  return encodeFrame(FLAG_EVENT | serialization, Status.OK, requestId, HESSIAN_NULL);
}

/** A non-OK response: the body is the error message as a hessian2 string. */
export function encodeErrorResponse(requestId: bigint, status: number, message: string): Buffer {
  const enc = new hessian.EncoderV2();
  enc.write(message);
  return encodeFrame(HESSIAN2, status, requestId, enc.get());
}

export type ResponseBody =
  | { readonly kind: 'value'; readonly value: JavaValue; readonly attachments?: Readonly<Record<string, string>> }
  | { readonly kind: 'null'; readonly attachments?: Readonly<Record<string, string>> }
  | { readonly kind: 'exception'; readonly exception: JavaValue; readonly attachments?: Readonly<Record<string, string>> };

export function encodeResponseBody(r: ResponseBody): Buffer {
  const enc = new hessian.EncoderV2();
  const att = r.attachments;
  if (r.kind === 'value') {
    enc.write(att ? ResponseType.VALUE_WITH_ATTACHMENTS : ResponseType.VALUE);
    enc.write(r.value);
  } else if (r.kind === 'null') {
    enc.write(att ? ResponseType.NULL_VALUE_WITH_ATTACHMENTS : ResponseType.NULL_VALUE);
  } else {
    enc.write(att ? ResponseType.EXCEPTION_WITH_ATTACHMENTS : ResponseType.EXCEPTION);
    enc.write(r.exception);
  }
  if (att) enc.write({ $class: 'java.util.HashMap', $: att });
  return enc.get();
}

export function encodeResponse(requestId: bigint, r: ResponseBody): Buffer {
  return encodeFrame(HESSIAN2, Status.OK, requestId, encodeResponseBody(r));
}

/** The routing part of a request body: the first four values (what a proxy needs to pick a route). */
export interface RequestHead {
  readonly dubboVersion: string;
  readonly service: string;
  readonly version: string;
  readonly method: string;
}

export type Decoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : v === null ? '' : null;
}

/**
 * Fast path for the head: hessian2 strings in the compact forms (0x00-0x1f, 0x30-0x33 + byte) whose
 * length, counted in characters, equals their byte length because all are ASCII. Anything else (chunked or
 * non-ASCII strings, null) returns null and the full decoder runs.
 */
function asciiHead(body: Buffer): RequestHead | null {
  // hot path
  const out: string[] = [];
  let off = 0;
  for (let k = 0; k < 4; k++) {
    const tag = body[off];
    if (tag === undefined) return null;
    let len: number;
    if (tag <= 0x1f) {
      len = tag;
      off += 1;
    } else if (tag >= 0x30 && tag <= 0x33) {
      const low = body[off + 1];
      if (low === undefined) return null;
      len = ((tag - 0x30) << 8) | low;
      off += 2;
    } else return null;
    const end = off + len;
    if (end > body.length) return null;
    for (let i = off; i < end; i++) if (body[i]! >= 0x80) return null;
    out.push(body.toString('latin1', off, end));
    off = end;
  }
  if (out[1] === '' || out[3] === '') return null;
  return { dubboVersion: out[0]!, service: out[1]!, version: out[2]!, method: out[3]! };
}

/** Reads the routing head of a hessian2 request body; never throws. */
export function decodeRequestHead(body: Buffer): Decoded<RequestHead> {
  const fast = asciiHead(body);
  if (fast !== null) return { ok: true, value: fast };
  try {
    const d = new hessian.DecoderV2(body);
    const dubboVersion = str(d.read());
    const service = str(d.read());
    const version = str(d.read());
    const method = str(d.read());
    if (dubboVersion === null || service === null || version === null || method === null || service === '' || method === '') {
      return { ok: false, reason: 'request body does not start with dubbo version, service, version and method strings' };
    }
    return { ok: true, value: { dubboVersion, service, version, method } };
  } catch (err) {
    return { ok: false, reason: `undecodable request body: ${(err as Error).message}` };
  }
}

export interface DecodedRequest extends RequestHead {
  readonly paramTypes: string;
  readonly args: unknown[];
  readonly attachments: Record<string, unknown>;
}

/** Number of arguments a JVM parameter descriptor declares ("Ljava/lang/String;[IJ" is 3). */
export function countParams(desc: string): number | null {
  let n = 0;
  let i = 0;
  while (i < desc.length) {
    while (desc[i] === '[') i++;
    const c = desc[i];
    if (c === undefined) return null;
    if (c === 'L') {
      const end = desc.indexOf(';', i);
      if (end < 0) return null;
      i = end + 1;
    } else if ('ZBCSIJFD'.includes(c)) i++;
    else return null;
    n++;
  }
  return n;
}

/** Reads a whole hessian2 request body (provider side); never throws. */
export function decodeRequestBody(body: Buffer): Decoded<DecodedRequest> {
  try {
    const d = new hessian.DecoderV2(body);
    const head = [d.read(), d.read(), d.read(), d.read(), d.read()].map(str);
    const [dubboVersion, service, version, method, paramTypes] = head;
    if (head.some((v) => v === null) || !service || !method) return { ok: false, reason: 'bad request head' };
    const n = countParams(paramTypes!);
    if (n === null) return { ok: false, reason: `bad parameter descriptor ${JSON.stringify(paramTypes)}` };
    const args: unknown[] = [];
    for (let i = 0; i < n; i++) args.push(d.read());
    const att = d.read();
    const attachments = att !== null && typeof att === 'object' ? (att as Record<string, unknown>) : {};
    return { ok: true, value: { dubboVersion: dubboVersion!, service, version: version!, method, paramTypes: paramTypes!, args, attachments } };
  } catch (err) {
    return { ok: false, reason: `undecodable request body: ${(err as Error).message}` };
  }
}

export interface JavaException {
  /** Java class name when known (e.g. java.lang.IllegalArgumentException). */
  readonly className: string;
  readonly message: string;
}

export type DecodedResponse =
  | { readonly kind: 'value'; readonly value: unknown; readonly attachments: Record<string, unknown> }
  | { readonly kind: 'null'; readonly attachments: Record<string, unknown> }
  | { readonly kind: 'exception'; readonly exception: JavaException; readonly attachments: Record<string, unknown> }
  /** Status other than OK: the provider (or a proxy) refused the call. */
  | { readonly kind: 'status'; readonly status: number; readonly message: string };

function toException(v: unknown): JavaException {
  if (v instanceof Error) return { className: v.name, message: v.message };
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const msg = o.detailMessage ?? o.message;
    return { className: typeof o.$class === 'string' ? o.$class : 'java.lang.Throwable', message: typeof msg === 'string' ? msg : '' };
  }
  return { className: 'java.lang.Throwable', message: String(v) };
}

function attachmentsOf(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** Decodes a response frame's body according to its status; never throws. */
export function decodeResponse(status: number, body: Buffer): Decoded<DecodedResponse> {
  try {
    const d = new hessian.DecoderV2(body);
    if (status !== Status.OK) {
      const m = body.length > 0 ? d.read() : '';
      return { ok: true, value: { kind: 'status', status, message: typeof m === 'string' ? m : '' } };
    }
    const type = d.read();
    switch (type) {
      case ResponseType.VALUE:
        return { ok: true, value: { kind: 'value', value: d.read(), attachments: {} } };
      case ResponseType.VALUE_WITH_ATTACHMENTS: {
        const value = d.read();
        return { ok: true, value: { kind: 'value', value, attachments: attachmentsOf(d.read()) } };
      }
      case ResponseType.NULL_VALUE:
        return { ok: true, value: { kind: 'null', attachments: {} } };
      case ResponseType.NULL_VALUE_WITH_ATTACHMENTS:
        return { ok: true, value: { kind: 'null', attachments: attachmentsOf(d.read()) } };
      case ResponseType.EXCEPTION:
        return { ok: true, value: { kind: 'exception', exception: toException(d.read()), attachments: {} } };
      case ResponseType.EXCEPTION_WITH_ATTACHMENTS: {
        const ex = toException(d.read());
        return { ok: true, value: { kind: 'exception', exception: ex, attachments: attachmentsOf(d.read()) } };
      }
      default:
        return { ok: false, reason: `unknown response type ${JSON.stringify(type)}` };
    }
  } catch (err) {
    return { ok: false, reason: `undecodable response body: ${(err as Error).message}` };
  }
}
