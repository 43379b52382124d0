// A buffered, non-blocking line writer for high-rate logs (the access log), nginx's `access_log ... buffer=
// flush=` (APISIX writes its access log with buffer=16384 flush=3): lines are queued as strings and written in
// one fs.write once `bufferSize` characters are queued, or when the oldest queued line is FLUSH_MS old, so a
// loaded gateway pays one libuv threadpool hop per ~16 KB of log rather than one per event-loop turn
// (bench/micro/access-log.ts), and a quiet one still sees its lines in the file within the flush interval.
// One timer per writer, re-armed (refresh, no allocation) when a line enters an empty buffer and unref'd so it
// never holds the process open. The queue is never re-measured per line: pino's SonicBoom recomputes
// Buffer.byteLength of its whole pending chunk on every write, which made it the largest cost of an access log
// line under load. Bounded: beyond MAX_PENDING characters queued (a stalled disk or pipe) lines are dropped
// and counted. To a pipe (stdout under a container's log collector, shared by every worker process) one write
// carries at most PIPE_BUF bytes of whole lines, which POSIX makes atomic, so workers' lines never tear.
import fs from 'node:fs';
import path from 'node:path';

const MAX_PENDING = 16 * 1024 * 1024;
/** Linux's PIPE_BUF: a write of at most this many bytes to a pipe is not interleaved with other writers'. */
const PIPE_BUF = 4096;

/** APISIX's access log buffer (nginx_config.http.access_log_buffer default). */
export const DEFAULT_BUFFER_SIZE = 16384;
/** The longest a queued line waits for its write to start: nginx `flush=3`, which APISIX does not expose. */
export const FLUSH_MS = 3000;

export class LineWriter {
  readonly fd: number;
  private readonly bufferSize: number;
  /** Bytes of one write: unbounded to a regular file, PIPE_BUF otherwise (lines longer than it go alone). */
  private readonly maxWrite: number;
  private pending: string[] = [];
  private pendingChars = 0;
  private writing = false;
  /** The flush timer fired while a write was in flight: the completion writes what is queued. */
  private due = false;
  private readonly timer: NodeJS.Timeout;
  /** flush() callers waiting for the write in flight to complete. */
  private idle: (() => void)[] = [];
  /** Lines dropped because MAX_PENDING was reached, plus batches a write error lost. */
  dropped = 0;

  /**
   * `dest`: `stdout`, or a file opened for append (its directory created). `bufferSize`: characters (bytes for
   * ASCII lines) queued before a write starts; 0 starts one for each line (while a write is in flight, lines
   * gather and the next write takes them all).
   */
  constructor(dest: string, bufferSize: number = DEFAULT_BUFFER_SIZE) {
    if (dest === 'stdout') this.fd = 1;
    else {
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      this.fd = fs.openSync(dest, 'a');
    }
    this.bufferSize = bufferSize;
    this.maxWrite = fs.fstatSync(this.fd).isFile() ? Number.POSITIVE_INFINITY : PIPE_BUF;
    // Armed now with nothing queued (its first run is a no-op); write() re-arms it from then on.
    this.timer = setTimeout(flushDue, FLUSH_MS, this);
    this.timer.unref();
  }

  write(line: string): void {
    // hot path
    if (this.pendingChars > MAX_PENDING) {
      this.dropped++;
      return;
    }
    // The first line of a batch starts the flush interval; later ones ride along.
    if (this.pending.length === 0) this.timer.refresh();
    this.pending.push(line);
    this.pendingChars += line.length;
    if (this.pendingChars >= this.bufferSize && !this.writing) this.drain();
  }

  /** The flush interval of the oldest queued line is over. */
  flushDue(): void {
    if (this.writing) this.due = true;
    else this.drain();
  }

  /** Starts one write of what is queued (of its first maxWrite bytes; the rest follows when it completes). */
  private drain(): void {
    const buf = this.take();
    this.due = this.pending.length > 0;
    if (buf === null) return;
    this.writing = true;
    writeAll(this, buf, 0);
  }

  /** Removes the lines of one write from the queue: all of them, or those within maxWrite (at least one). */
  private take(): Buffer | null {
    const p = this.pending;
    if (p.length === 0) return null;
    let n = p.length;
    if (this.maxWrite !== Number.POSITIVE_INFINITY) {
      let bytes = 0;
      for (n = 0; n < p.length; n++) {
        const b = Buffer.byteLength(p[n]!, 'utf8');
        if (n > 0 && bytes + b > this.maxWrite) break;
        bytes += b;
      }
    }
    let text: string;
    if (n === p.length) {
      text = n === 1 ? p[0]! : p.join('');
      this.pending = [];
      this.pendingChars = 0;
    } else {
      text = p.splice(0, n).join('');
      this.pendingChars -= text.length;
    }
    return Buffer.from(text, 'utf8');
  }

  written(buf: Buffer, off: number, err: NodeJS.ErrnoException | null, n: number): void {
    if (err !== null) {
      if (err.code === 'EAGAIN') {
        setTimeout(writeAll, 10, this, buf, off);
        return;
      }
      // A log that cannot be written must not take the gateway down: drop this batch.
      this.dropped++;
    } else if (off + n < buf.length) {
      writeAll(this, buf, off + n);
      return;
    }
    this.writing = false;
    if (this.due || this.pendingChars >= this.bufferSize) this.drain();
    if (!this.writing && this.idle.length > 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  /**
   * Shutdown: resolves once every queued line is written, in order: the write in flight (if any) completes,
   * then the rest is written synchronously. The caller bounds the wait (a stalled pipe blocks the write).
   */
  async flush(): Promise<void> {
    while (this.writing) await new Promise<void>((resolve) => this.idle.push(resolve));
    this.flushSync();
  }

  private flushSync(): void {
    this.due = false;
    for (let buf = this.take(); buf !== null; buf = this.take()) {
      let off = 0;
      for (let tries = 0; off < buf.length && tries < 1000; tries++) {
        try {
          off += fs.writeSync(this.fd, buf, off);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
        }
      }
    }
  }
}

function flushDue(w: LineWriter): void {
  w.flushDue();
}

function writeAll(w: LineWriter, buf: Buffer, off: number): void {
  // One callback per batch of lines, not per line.
  fs.write(w.fd, buf, off, buf.length - off, null, (err, n) => w.written(buf, off, err, n));
}
