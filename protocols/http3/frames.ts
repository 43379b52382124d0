// HTTP/3 framing (RFC 9114 7): QUIC variable-length integers, frame and stream types, error codes, and an
// incremental frame reader with a size bound on frames it has to buffer.

export const FRAME_DATA = 0x00;
export const FRAME_HEADERS = 0x01;
export const FRAME_CANCEL_PUSH = 0x03;
export const FRAME_SETTINGS = 0x04;
export const FRAME_PUSH_PROMISE = 0x05;
export const FRAME_GOAWAY = 0x07;
export const FRAME_MAX_PUSH_ID = 0x0d;
/** HTTP/2 frame types with no HTTP/3 meaning: receiving one is H3_FRAME_UNEXPECTED (RFC 9114 7.2.8). */
export const RESERVED_H2_FRAMES: ReadonlySet<number> = new Set([0x02, 0x06, 0x08, 0x09]);

export const STREAM_CONTROL = 0x00;
export const STREAM_PUSH = 0x01;
export const STREAM_QPACK_ENCODER = 0x02;
export const STREAM_QPACK_DECODER = 0x03;

export const SETTINGS_QPACK_MAX_TABLE_CAPACITY = 0x01;
export const SETTINGS_MAX_FIELD_SECTION_SIZE = 0x06;
export const SETTINGS_QPACK_BLOCKED_STREAMS = 0x07;
/** HTTP/2 settings that must not appear in HTTP/3 SETTINGS (RFC 9114 7.2.4.1). */
export const RESERVED_H2_SETTINGS: ReadonlySet<number> = new Set([0x00, 0x02, 0x03, 0x04, 0x05]);

export const H3_NO_ERROR = 0x100;
export const H3_GENERAL_PROTOCOL_ERROR = 0x101;
export const H3_INTERNAL_ERROR = 0x102;
export const H3_STREAM_CREATION_ERROR = 0x103;
export const H3_CLOSED_CRITICAL_STREAM = 0x104;
export const H3_FRAME_UNEXPECTED = 0x105;
export const H3_FRAME_ERROR = 0x106;
export const H3_EXCESSIVE_LOAD = 0x107;
export const H3_ID_ERROR = 0x108;
export const H3_SETTINGS_ERROR = 0x109;
export const H3_MISSING_SETTINGS = 0x10a;
export const H3_REQUEST_REJECTED = 0x10b;
export const H3_REQUEST_CANCELLED = 0x10c;
export const H3_REQUEST_INCOMPLETE = 0x10d;
export const H3_MESSAGE_ERROR = 0x10e;

/** An HTTP/3 error: a connection error (close with `code`) or, with `stream`, a stream error (reset). */
export class H3Error extends Error {
  readonly code: number;
  readonly stream: boolean;
  constructor(code: number, message: string, stream = false) {
    super(message);
    this.code = code;
    this.stream = stream;
  }
}

/** Length in bytes of the varint starting with byte `first`. */
export function varintLength(first: number): number {
  return 1 << (first >> 6);
}

/** Reads a varint at `pos` (caller checked the length). Values above 2^53 lose precision, harmlessly here. */
export function readVarint(buf: Uint8Array, pos: number): number {
  const len = varintLength(buf[pos]!);
  let v = buf[pos]! & 0x3f;
  for (let i = 1; i < len; i++) v = v * 256 + buf[pos + i]!;
  return v;
}

export function varint(v: number): Buffer {
  if (v < 0x40) return Buffer.from([v]);
  if (v < 0x4000) return Buffer.from([0x40 | (v >> 8), v & 0xff]);
  if (v < 0x40000000) {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(v);
    b[0]! |= 0x80;
    return b;
  }
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(v));
  b[0]! |= 0xc0;
  return b;
}

export function frame(type: number, payload: Uint8Array): Buffer {
  return Buffer.concat([varint(type), varint(payload.length), payload]);
}

/** The head of a DATA frame of `length` bytes (the payload is written after it without copying). */
export function dataFrameHead(length: number): Buffer {
  return Buffer.concat([varint(FRAME_DATA), varint(length)]);
}

export function settingsFrame(settings: ReadonlyArray<readonly [number, number]>): Buffer {
  return frame(FRAME_SETTINGS, Buffer.concat(settings.flatMap(([k, v]) => [varint(k), varint(v)])));
}

/** Parses a SETTINGS payload: duplicates and HTTP/2 identifiers are H3_SETTINGS_ERROR; unknown ones ignored. */
export function parseSettings(payload: Uint8Array): Map<number, number> {
  const out = new Map<number, number>();
  let pos = 0;
  while (pos < payload.length) {
    const kl = varintLength(payload[pos]!);
    if (pos + kl >= payload.length) throw new H3Error(H3_FRAME_ERROR, 'truncated SETTINGS');
    const id = readVarint(payload, pos);
    pos += kl;
    const vl = varintLength(payload[pos]!);
    if (pos + vl > payload.length) throw new H3Error(H3_FRAME_ERROR, 'truncated SETTINGS');
    const v = readVarint(payload, pos);
    pos += vl;
    if (RESERVED_H2_SETTINGS.has(id)) throw new H3Error(H3_SETTINGS_ERROR, `HTTP/2 setting 0x${id.toString(16)} in SETTINGS`);
    if (out.has(id)) throw new H3Error(H3_SETTINGS_ERROR, `duplicate setting 0x${id.toString(16)}`);
    out.set(id, v);
  }
  return out;
}

/** One parsed event of a stream: a whole frame, or a DATA payload piece streamed without buffering. */
export type FrameEvent =
  | { kind: 'frame'; type: number; payload: Buffer }
  | { kind: 'data'; chunk: Buffer };

/**
 * Incremental frame reader. DATA payloads are passed through in pieces (never buffered whole); other frames are
 * buffered up to `maxFrame` bytes (H3_EXCESSIVE_LOAD beyond, so one client cannot make us hold a huge frame).
 * Unknown frame types are reported like others; skipping them is the caller's policy.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  /** Bytes of DATA payload still to pass through. */
  private dataLeft = 0;
  private readonly maxFrame: number;

  constructor(maxFrame: number) {
    this.maxFrame = maxFrame;
  }

  /** True when the stream ended exactly on a frame boundary. */
  get atBoundary(): boolean {
    return this.buf.length === 0 && this.dataLeft === 0;
  }

  push(chunk: Buffer, out: FrameEvent[]): void {
    let buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.dataLeft > 0) {
        if (buf.length === 0) break;
        const n = Math.min(this.dataLeft, buf.length);
        out.push({ kind: 'data', chunk: buf.subarray(0, n) });
        this.dataLeft -= n;
        buf = buf.subarray(n);
        continue;
      }
      if (buf.length === 0) break;
      const tl = varintLength(buf[0]!);
      if (buf.length < tl + 1) break;
      const ll = varintLength(buf[tl]!);
      if (buf.length < tl + ll) break;
      const type = readVarint(buf, 0);
      const len = readVarint(buf, tl);
      const head = tl + ll;
      if (type === FRAME_DATA) {
        buf = buf.subarray(head);
        this.dataLeft = len;
        continue;
      }
      if (len > this.maxFrame) throw new H3Error(H3_EXCESSIVE_LOAD, `frame 0x${type.toString(16)} of ${len} bytes`);
      if (buf.length < head + len) break;
      out.push({ kind: 'frame', type, payload: buf.subarray(head, head + len) });
      buf = buf.subarray(head + len);
    }
    this.buf = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
  }
}
