// Client bytes read before the upstream is connected (ClientHello peek, mqtt-proxy CONNECT, PROXY header).
// Peeked bytes are kept and later replayed to the upstream, so peeking never consumes data. Reading is
// paused whenever nobody waits, and the buffer is bounded: a peek asking for more than `limit` bytes
// resolves with what fits.
import type { Duplex } from 'node:stream';

interface Waiter {
  readonly n: number;
  readonly resolve: (b: Buffer) => void;
  readonly timer: NodeJS.Timeout | undefined;
}

export class Prebuffer {
  private readonly source: Duplex;
  private readonly limit: number;
  private chunks: Buffer[] = [];
  private length_ = 0;
  private joined: Buffer | null = null;
  private waiter: Waiter | null = null;
  private attached = false;
  private released = false;
  /** The client half-closed (or errored) while we were buffering. */
  ended = false;
  private readonly onData = (chunk: Buffer): void => this.push(chunk);
  private readonly onEnd = (): void => this.finish();

  constructor(source: Duplex, limit: number) {
    this.source = source;
    this.limit = limit;
  }

  get length(): number {
    return this.length_;
  }

  /** Everything buffered so far. */
  peeked(): Buffer {
    if (this.joined === null) this.joined = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.length_);
    return this.joined;
  }

  /**
   * Resolves once at least min(n, limit) bytes are buffered, the client ended, or `timeoutMs` passed
   * (with whatever is buffered then). One peek at a time.
   */
  peek(n: number, timeoutMs?: number): Promise<Buffer> {
    const want = Math.min(n, this.limit);
    if (this.length_ >= want || this.ended || this.released) return Promise.resolve(this.peeked());
    if (this.waiter !== null) return Promise.reject(new Error('concurrent peek'));
    return new Promise<Buffer>((resolve) => {
      const timer = timeoutMs !== undefined ? setTimeout(() => this.wake(), timeoutMs) : undefined;
      this.waiter = { n: want, resolve, timer };
      if (!this.attached) {
        this.attached = true;
        this.source.on('data', this.onData);
        this.source.once('end', this.onEnd);
        this.source.once('close', this.onEnd);
      }
      this.source.resume();
    });
  }

  /** Drops the first `n` buffered bytes (a PROXY protocol header that must not reach the upstream). */
  consume(n: number): void {
    const rest = this.peeked().subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.length_ = rest.length;
    this.joined = null;
  }

  /** Stops buffering and hands the bytes over; the source stays paused for the caller to pipe. */
  release(): Buffer[] {
    this.released = true;
    if (this.attached) {
      this.source.off('data', this.onData);
      this.source.off('end', this.onEnd);
      this.source.off('close', this.onEnd);
    }
    this.source.pause();
    this.wake();
    const out = this.chunks;
    this.chunks = [];
    this.length_ = 0;
    this.joined = null;
    return out;
  }

  private push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length_ += chunk.length;
    this.joined = null;
    const w = this.waiter;
    if (w !== null && this.length_ >= w.n) this.wake();
    else if (this.length_ >= this.limit) this.wake();
  }

  private finish(): void {
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    this.source.pause();
    const w = this.waiter;
    if (w === null) return;
    this.waiter = null;
    if (w.timer !== undefined) clearTimeout(w.timer);
    w.resolve(this.peeked());
  }
}
