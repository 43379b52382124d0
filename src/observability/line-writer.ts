// A buffered, non-blocking line writer for high-rate logs (the access log): lines are queued as strings and
// written in one fs.write per event-loop turn (or per completed write under load), never one syscall or one
// re-measure of a growing buffer per line. pino's SonicBoom recomputes Buffer.byteLength of its whole pending
// chunk (up to 16 KB) on every write, which made it the largest cost of an access log line under load.
// Bounded: beyond MAX_PENDING bytes queued (a stalled disk or pipe) lines are dropped and counted.
import fs from 'node:fs';
import path from 'node:path';

const MAX_PENDING = 16 * 1024 * 1024;

export class LineWriter {
  readonly fd: number;
  private pending: string[] = [];
  private pendingChars = 0;
  private scheduled = false;
  private writing = false;
  /** Lines dropped because MAX_PENDING was reached. */
  dropped = 0;

  /** `stdout`, or a file opened for append (its directory created). */
  constructor(dest: string) {
    if (dest === 'stdout') this.fd = 1;
    else {
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      this.fd = fs.openSync(dest, 'a');
    }
  }

  write(line: string): void {
    // hot path
    if (this.pendingChars > MAX_PENDING) {
      this.dropped++;
      return;
    }
    this.pending.push(line);
    this.pendingChars += line.length;
    if (!this.scheduled && !this.writing) {
      this.scheduled = true;
      setImmediate(flushSoon, this);
    }
  }

  /** Starts one write of everything queued. */
  drain(): void {
    this.scheduled = false;
    if (this.writing || this.pending.length === 0) return;
    const buf = Buffer.from(this.pending.length === 1 ? this.pending[0]! : this.pending.join(''), 'utf8');
    this.pending = [];
    this.pendingChars = 0;
    this.writing = true;
    writeAll(this, buf, 0);
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
    if (this.pending.length > 0) this.drain();
  }

  /** Writes what is queued synchronously (shutdown). */
  flushSync(): void {
    if (this.pending.length === 0) return;
    const buf = Buffer.from(this.pending.join(''), 'utf8');
    this.pending = [];
    this.pendingChars = 0;
    let off = 0;
    for (let tries = 0; off < buf.length && tries < 1000; tries++) {
      try {
        off += fs.writeSync(this.fd, buf, off);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      }
    }
  }

  close(): void {
    this.flushSync();
    if (this.fd !== 1) fs.closeSync(this.fd);
  }
}

function flushSoon(w: LineWriter): void {
  w.drain();
}

function writeAll(w: LineWriter, buf: Buffer, off: number): void {
  // One callback per batch of lines, not per line.
  fs.write(w.fd, buf, off, buf.length - off, null, (err, n) => w.written(buf, off, err, n));
}
