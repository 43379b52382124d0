// Streaming Dubbo frame splitter for untrusted input. Bytes may arrive in any split (one at a time
// included); a frame is returned once complete. Bad input is a value, never an exception: a wrong magic is
// reported as soon as the first byte that differs arrives, an oversized body as soon as the header is
// complete (nothing of it is buffered). After an error the decoder drops its buffer and stays failed: the
// caller closes the connection. Between calls the decoder retains less than HEADER_LENGTH + maxFrameSize
// bytes once next() has returned 'need'.
import { DEFAULT_MAX_FRAME, HEADER_LENGTH, MAGIC_HIGH, MAGIC_LOW, type Frame } from './codec.ts';

export type FrameErrorCode = 'bad_magic' | 'frame_too_large';

export interface FrameError {
  readonly code: FrameErrorCode;
  readonly message: string;
}

export type DecodeStep =
  | { readonly kind: 'frame'; readonly frame: Frame }
  | { readonly kind: 'need' }
  | { readonly kind: 'error'; readonly error: FrameError };

const NEED: DecodeStep = Object.freeze({ kind: 'need' });

export class FrameDecoder {
  readonly maxFrameSize: number;
  /** Pending chunks from index `head` on (an index, not shift(): byte-at-a-time input stays linear). */
  private chunks: Buffer[] = [];
  private head = 0;
  private length = 0;
  /** Header of the frame whose body is awaited (parsed once). */
  private flags = 0;
  private status = 0;
  private requestId = 0n;
  private bodyLength = -1;
  private failed: DecodeStep | null = null;
  private readonly scratch = Buffer.alloc(HEADER_LENGTH);

  constructor(maxFrameSize: number = DEFAULT_MAX_FRAME) {
    if (!Number.isInteger(maxFrameSize) || maxFrameSize < 0 || maxFrameSize > 0xffffffff) throw new Error(`invalid dubbo max frame size ${maxFrameSize}`);
    this.maxFrameSize = maxFrameSize;
  }

  /** Bytes held (not yet returned as frames). */
  get buffered(): number {
    return this.length;
  }

  push(chunk: Buffer): void {
    if (this.failed !== null || chunk.length === 0) return;
    if (this.head > 32 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  // hot path
  next(): DecodeStep {
    if (this.failed !== null) return this.failed;
    if (this.bodyLength < 0) {
      const first = this.chunks[this.head];
      if (first === undefined) return NEED;
      // Reject garbage on its first byte(s) rather than waiting for a full header.
      if (first[0] !== MAGIC_HIGH) return this.fail('bad_magic', `bad magic byte 0x${first[0]!.toString(16).padStart(2, '0')}`);
      if (this.length < 2) return NEED;
      const second = first.length > 1 ? first[1]! : this.chunks[this.head + 1]![0]!;
      if (second !== MAGIC_LOW) return this.fail('bad_magic', `bad magic 0xda${second.toString(16).padStart(2, '0')}`);
      if (this.length < HEADER_LENGTH) return NEED;
      const h = first.length >= HEADER_LENGTH ? first : this.gather(HEADER_LENGTH);
      const bodyLength = h.readUInt32BE(12);
      if (bodyLength > this.maxFrameSize) {
        return this.fail('frame_too_large', `frame body of ${bodyLength} bytes exceeds the ${this.maxFrameSize} byte limit`);
      }
      this.flags = h[2]!;
      this.status = h[3]!;
      this.requestId = h.readBigUInt64BE(4);
      this.bodyLength = bodyLength;
      this.skip(HEADER_LENGTH);
    }
    const n = this.bodyLength;
    if (this.length < n) return NEED;
    const body = this.take(n);
    this.bodyLength = -1;
    return { kind: 'frame', frame: { flags: this.flags, status: this.status, requestId: this.requestId, bodyLength: n, body } };
  }

  private fail(code: FrameErrorCode, message: string): DecodeStep {
    this.chunks = [];
    this.head = 0;
    this.length = 0;
    this.failed = { kind: 'error', error: { code, message } };
    return this.failed;
  }

  /** Copies the first n (<= 16) bytes into the scratch buffer without consuming them. */
  private gather(n: number): Buffer {
    let off = 0;
    for (let i = this.head; i < this.chunks.length; i++) {
      const c = this.chunks[i]!;
      const k = Math.min(c.length, n - off);
      c.copy(this.scratch, off, 0, k);
      off += k;
      if (off === n) break;
    }
    return this.scratch;
  }

  private skip(n: number): void {
    this.length -= n;
    while (n > 0) {
      const c = this.chunks[this.head]!;
      if (c.length <= n) {
        n -= c.length;
        this.drop();
      } else {
        this.chunks[this.head] = c.subarray(n);
        n = 0;
      }
    }
  }

  private drop(): void {
    this.head++;
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    }
  }

  /** Consumes n bytes: a view when they lie in one chunk, else one copy of exactly n bytes. */
  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[this.head]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      this.skip(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[this.head]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.drop();
      else this.chunks[this.head] = c.subarray(k);
    }
    this.length -= n;
    return out;
  }
}
