// QPACK (RFC 9204). Decoder: static table, Huffman, the dynamic table fed by the peer's encoder stream,
// blocked sections, Section Acknowledgment / Insert Count Increment / Stream Cancellation on our decoder
// stream, and limits (field section size, field count) checked while decoding. Encoder: static table and
// literals only (no dynamic table, no Huffman), which every decoder must accept and which never blocks.
import { huffmanDecode, HuffmanError } from './huffman.ts';
import { STATIC_EXACT, STATIC_NAME, STATIC_TABLE } from './qpack-static.ts';

export const QPACK_DECOMPRESSION_FAILED = 0x200;
export const QPACK_ENCODER_STREAM_ERROR = 0x201;

/** A QPACK connection error (the connection closes with `code`). */
export class QpackError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

/** The field section exceeds our limits: the request is answered 431 (RFC 9114 4.2.2), the connection lives. */
export class FieldSectionTooLarge extends Error {}

/** Thrown by the primitive readers when the buffer ends inside an instruction (encoder stream only). */
class Incomplete extends Error {}
const INCOMPLETE = new Incomplete('incomplete');

export type Field = [name: string, value: string];

interface Cursor {
  pos: number;
}

/** RFC 7541 5.1 prefixed integer; values beyond 2^53 are refused. */
function readInt(buf: Uint8Array, c: Cursor, prefix: number): number {
  if (c.pos >= buf.length) throw INCOMPLETE;
  const max = (1 << prefix) - 1;
  let v = buf[c.pos++]! & max;
  if (v < max) return v;
  let mul = 1;
  for (;;) {
    if (c.pos >= buf.length) throw INCOMPLETE;
    const b = buf[c.pos++]!;
    v += (b & 0x7f) * mul;
    if (v > Number.MAX_SAFE_INTEGER) throw new QpackError(QPACK_DECOMPRESSION_FAILED, 'integer overflow');
    if ((b & 0x80) === 0) return v;
    mul *= 128;
    // Redundant zero continuation bytes add nothing to v but keep scaling mul: at Infinity, 0 * mul is NaN,
    // and a NaN capacity or length passes every later bound (an unbounded dynamic table). No value up to
    // 2^53 needs a continuation byte beyond this point.
    if (mul > Number.MAX_SAFE_INTEGER) throw new QpackError(QPACK_DECOMPRESSION_FAILED, 'integer overflow');
  }
}

/** A string literal whose H flag is bit `prefix` of the first byte and length a `prefix`-bit integer. */
function readString(buf: Uint8Array, c: Cursor, prefix: number, limit: number): string {
  if (c.pos >= buf.length) throw INCOMPLETE;
  const huff = (buf[c.pos]! & (1 << prefix)) !== 0;
  const len = readInt(buf, c, prefix);
  if (len > limit) throw new FieldSectionTooLarge('field too large');
  if (c.pos + len > buf.length) throw INCOMPLETE;
  const start = c.pos;
  c.pos += len;
  if (!huff) return Buffer.from(buf.buffer, buf.byteOffset + start, len).toString('latin1');
  try {
    return huffmanDecode(buf, start, start + len);
  } catch (err) {
    if (err instanceof HuffmanError) throw new QpackError(QPACK_DECOMPRESSION_FAILED, err.message);
    throw err;
  }
}

function writeInt(out: number[], first: number, prefix: number, v: number): void {
  const max = (1 << prefix) - 1;
  if (v < max) {
    out.push(first | v);
    return;
  }
  out.push(first | max);
  v -= max;
  while (v >= 128) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

export interface DecoderLimits {
  /** SETTINGS_QPACK_MAX_TABLE_CAPACITY we advertise. */
  readonly maxTableCapacity: number;
  /** SETTINGS_QPACK_BLOCKED_STREAMS we advertise. */
  readonly maxBlockedStreams: number;
  /** SETTINGS_MAX_FIELD_SECTION_SIZE (RFC 9114 4.2.2 size: name + value + 32 per field). */
  readonly maxFieldSectionSize: number;
  readonly maxFields: number;
}

export type DecodeResult = { fields: Field[]; blocked: false } | { blocked: true; requiredInsertCount: number };

export class QpackDecoder {
  private readonly limits: DecoderLimits;
  private capacity = 0;
  private size = 0;
  /** Entry of absolute index i is entries[i - dropped]. */
  private readonly entries: Field[] = [];
  private dropped = 0;
  private inserts = 0;
  /** Insert count the encoder knows we received (Section Acknowledgments and Insert Count Increments sent). */
  private acknowledged = 0;
  private pending: Buffer = Buffer.alloc(0);
  private blocked = 0;
  /** Decoder stream bytes waiting to be sent (the session flushes them). */
  private out: number[] = [];

  constructor(limits: DecoderLimits) {
    this.limits = limits;
  }

  get insertCount(): number {
    return this.inserts;
  }

  /** Decoder-stream instructions produced since the last call. */
  takeInstructions(): Buffer | null {
    if (this.out.length === 0) return null;
    const b = Buffer.from(this.out);
    this.out = [];
    return b;
  }

  /** Feeds bytes of the peer's encoder stream; returns true when entries were inserted. */
  onEncoderStream(chunk: Uint8Array): boolean {
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const c: Cursor = { pos: 0 };
    const before = this.inserts;
    let done = 0;
    try {
      while (c.pos < buf.length) {
        this.encoderInstruction(buf, c);
        done = c.pos;
      }
    } catch (err) {
      if (!(err instanceof Incomplete)) {
        if (err instanceof QpackError) throw new QpackError(QPACK_ENCODER_STREAM_ERROR, err.message);
        if (err instanceof FieldSectionTooLarge) throw new QpackError(QPACK_ENCODER_STREAM_ERROR, 'entry larger than the table');
        throw err;
      }
    }
    this.pending = Buffer.from(buf.subarray(done));
    if (this.pending.length > 64 * 1024) throw new QpackError(QPACK_ENCODER_STREAM_ERROR, 'encoder instruction too large');
    if (this.inserts > this.acknowledged) {
      writeInt(this.out, 0x00, 6, this.inserts - this.acknowledged);
      this.acknowledged = this.inserts;
    }
    return this.inserts > before;
  }

  private encoderInstruction(buf: Uint8Array, c: Cursor): void {
    const b = buf[c.pos]!;
    const limit = this.capacity;
    if (b & 0x80) {
      const isStatic = (b & 0x40) !== 0;
      const idx = readInt(buf, c, 6);
      const value = readString(buf, c, 7, limit);
      const name = isStatic ? this.staticEntry(idx)[0] : this.dynamic(this.inserts - 1 - idx)[0];
      this.insert(name, value);
    } else if (b & 0x40) {
      const name = readString(buf, c, 5, limit);
      const value = readString(buf, c, 7, limit);
      this.insert(name, value);
    } else if (b & 0x20) {
      const cap = readInt(buf, c, 5);
      if (cap > this.limits.maxTableCapacity) throw new QpackError(QPACK_ENCODER_STREAM_ERROR, 'table capacity above our limit');
      this.capacity = cap;
      this.evict(0);
    } else {
      const idx = readInt(buf, c, 5);
      const [name, value] = this.dynamic(this.inserts - 1 - idx);
      this.insert(name, value);
    }
  }

  private insert(name: string, value: string): void {
    const need = name.length + value.length + 32;
    if (need > this.capacity) throw new QpackError(QPACK_ENCODER_STREAM_ERROR, 'entry larger than the table');
    this.evict(need);
    this.entries.push([name, value]);
    this.size += need;
    this.inserts++;
  }

  private evict(room: number): void {
    while (this.size + room > this.capacity && this.entries.length > 0) {
      const [n, v] = this.entries.shift()!;
      this.size -= n.length + v.length + 32;
      this.dropped++;
    }
  }

  private staticEntry(idx: number): readonly [string, string] {
    const e = STATIC_TABLE[idx];
    if (e === undefined) throw new QpackError(QPACK_DECOMPRESSION_FAILED, `static index ${idx} out of range`);
    return e;
  }

  private dynamic(abs: number): Field {
    const e = abs >= this.dropped ? this.entries[abs - this.dropped] : undefined;
    if (e === undefined) throw new QpackError(QPACK_DECOMPRESSION_FAILED, `dynamic index ${abs} not in the table`);
    return e;
  }

  /** Decodes the Encoded Required Insert Count of a field section prefix (RFC 9204 4.5.1.1). */
  private requiredInsertCount(enc: number): number {
    if (enc === 0) return 0;
    const maxEntries = Math.floor(this.limits.maxTableCapacity / 32);
    const fullRange = 2 * maxEntries;
    if (enc > fullRange) throw new QpackError(QPACK_DECOMPRESSION_FAILED, 'bad required insert count');
    const maxValue = this.inserts + maxEntries;
    const maxWrapped = Math.floor(maxValue / fullRange) * fullRange;
    let ric = maxWrapped + enc - 1;
    if (ric > maxValue) {
      if (ric <= fullRange) throw new QpackError(QPACK_DECOMPRESSION_FAILED, 'bad required insert count');
      ric -= fullRange;
    }
    if (ric === 0) throw new QpackError(QPACK_DECOMPRESSION_FAILED, 'bad required insert count');
    return ric;
  }

  /**
   * Decodes one field section of request stream `streamId`. A section that needs entries not yet received is
   * reported blocked (call again after onEncoderStream() inserted); `wasBlocked` releases its blocked slot.
   */
  decode(block: Uint8Array, streamId: number, wasBlocked = false): DecodeResult {
    const c: Cursor = { pos: 0 };
    let ric: number;
    let base: number;
    try {
      ric = this.requiredInsertCount(readInt(block, c, 8));
      if (c.pos >= block.length) throw INCOMPLETE;
      const sign = (block[c.pos]! & 0x80) !== 0;
      const delta = readInt(block, c, 7);
      base = sign ? ric - delta - 1 : ric + delta;
      if (base < 0) throw new QpackError(QPACK_DECOMPRESSION_FAILED, 'negative base');
    } catch (err) {
      if (err instanceof Incomplete) throw new QpackError(QPACK_DECOMPRESSION_FAILED, 'truncated field section prefix');
      throw err;
    }
    if (ric > this.inserts) {
      if (!wasBlocked) {
        if (this.blocked >= this.limits.maxBlockedStreams) throw new QpackError(QPACK_DECOMPRESSION_FAILED, 'too many blocked streams');
        this.blocked++;
      }
      return { blocked: true, requiredInsertCount: ric };
    }
    if (wasBlocked) this.blocked--;
    const fields: Field[] = [];
    let total = 0;
    const { maxFieldSectionSize, maxFields } = this.limits;
    try {
      while (c.pos < block.length) {
        const b = block[c.pos]!;
        let name: string;
        let value: string;
        if (b & 0x80) {
          const idx = readInt(block, c, 6);
          [name, value] = b & 0x40 ? this.staticEntry(idx) : this.ref(base - 1 - idx, ric);
        } else if (b & 0x40) {
          const idx = readInt(block, c, 4);
          name = b & 0x10 ? this.staticEntry(idx)[0] : this.ref(base - 1 - idx, ric)[0];
          value = readString(block, c, 7, maxFieldSectionSize);
        } else if (b & 0x20) {
          name = readString(block, c, 3, maxFieldSectionSize);
          value = readString(block, c, 7, maxFieldSectionSize);
        } else if (b & 0x10) {
          [name, value] = this.ref(base + readInt(block, c, 4), ric);
        } else {
          name = this.ref(base + readInt(block, c, 3), ric)[0];
          value = readString(block, c, 7, maxFieldSectionSize);
        }
        total += name.length + value.length + 32;
        if (total > maxFieldSectionSize || fields.length >= maxFields) throw new FieldSectionTooLarge('field section too large');
        fields.push([name, value]);
      }
    } catch (err) {
      if (err instanceof Incomplete) throw new QpackError(QPACK_DECOMPRESSION_FAILED, 'truncated field line');
      throw err;
    } finally {
      // Every section with dynamic references is acknowledged (even one we refuse), so the encoder can evict.
      if (ric > 0) {
        writeInt(this.out, 0x80, 7, streamId);
        if (ric > this.acknowledged) this.acknowledged = ric;
      }
    }
    return { fields, blocked: false };
  }

  private ref(abs: number, ric: number): Field {
    if (abs < 0 || abs >= ric) throw new QpackError(QPACK_DECOMPRESSION_FAILED, 'reference outside the section');
    return this.dynamic(abs);
  }

  /** A blocked stream went away before its section could be decoded (RFC 9204 4.4.2). */
  cancelStream(streamId: number, wasBlocked: boolean): void {
    if (wasBlocked) this.blocked--;
    writeInt(this.out, 0x40, 6, streamId);
  }
}

/** Encodes a field section with the static table and plain literals (Required Insert Count 0, Base 0). */
export function encodeFieldSection(fields: readonly Field[]): Buffer {
  const out: number[] = [0, 0];
  for (const [name, value] of fields) {
    const exact = STATIC_EXACT.get(`${name}\0${value}`);
    if (exact !== undefined) {
      writeInt(out, 0xc0, 6, exact);
      continue;
    }
    const byName = STATIC_NAME.get(name);
    if (byName !== undefined) writeInt(out, 0x50, 4, byName);
    else {
      writeInt(out, 0x20, 3, Buffer.byteLength(name, 'latin1'));
      for (let i = 0; i < name.length; i++) out.push(name.charCodeAt(i) & 0xff);
    }
    writeInt(out, 0x00, 7, Buffer.byteLength(value, 'latin1'));
    for (let i = 0; i < value.length; i++) out.push(value.charCodeAt(i) & 0xff);
  }
  return Buffer.from(out);
}
