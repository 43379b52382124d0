// Raw-socket clients for the HTTP/1.1 engine conformance tests: exact bytes in, exact bytes out.
import net from 'node:net';

export interface RawResult {
  /** Everything the gateway wrote, latin1. */
  text: string;
  /** The status lines in order (`HTTP/1.1 200 OK`). */
  statuses: string[];
  /** The gateway closed the connection (as opposed to the idle cut-off of this client). */
  closedByPeer: boolean;
  /** ms from the last write until the close (or the idle cut-off). */
  closeAfterMs: number;
}

export interface RawOptions {
  /** Parts written one after another, `gapMs` apart. */
  gapMs?: number;
  /** Stop waiting this long after the last byte received (default 1500 ms); the socket is then destroyed. */
  idleMs?: number;
  /** Total bound (default 10 s). */
  totalMs?: number;
  /** Half-close after the last part. */
  end?: boolean;
}

const STATUS = /^HTTP\/1\.[01] \d{3}[^\r\n]*/gm;

/** Sends `parts` on one connection and collects the answer until the gateway closes or goes quiet. */
export function raw(port: number, parts: (string | Buffer)[], opts: RawOptions = {}): Promise<RawResult> {
  const idleMs = opts.idleMs ?? 1500;
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let lastWrite = Date.now();
    let done = false;
    let idle: NodeJS.Timeout | undefined;
    const finish = (byPeer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(idle);
      clearTimeout(total);
      s.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ text, statuses: text.match(STATUS) ?? [], closedByPeer: byPeer, closeAfterMs: Date.now() - lastWrite });
    };
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => finish(false), idleMs);
    };
    const total = setTimeout(() => finish(false), opts.totalMs ?? 10_000);
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      arm();
    });
    s.on('close', () => finish(true));
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') finish(true);
      else if (!done) reject(err);
    });
    s.once('connect', async () => {
      for (let i = 0; i < parts.length; i++) {
        if (i > 0 && opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
        if (s.destroyed) return;
        s.write(parts[i]!);
        lastWrite = Date.now();
      }
      if (opts.end) s.end();
      arm();
    });
  });
}

/** A connection driven step by step: write, then wait for an exact substring in what came back. */
export class RawConn {
  readonly socket: net.Socket;
  buf = '';
  closed = false;
  private waiters: { needle: string; resolve: () => void }[] = [];

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.waiters = this.waiters.filter((w) => (this.buf.includes(w.needle) ? (w.resolve(), false) : true));
    });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => (this.closed = true));
  }

  write(d: string | Buffer): void {
    this.socket.write(d);
  }

  /** Resolves once `needle` was received; rejects after `ms`. */
  waitFor(needle: string, ms = 5000): Promise<void> {
    if (this.buf.includes(needle)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${JSON.stringify(needle)} within ${ms} ms; got ${JSON.stringify(this.buf.slice(0, 300))}`)), ms);
      this.waiters.push({ needle, resolve: () => (clearTimeout(t), resolve()) });
    });
  }

  waitClose(ms = 5000): Promise<number> {
    const started = Date.now();
    if (this.closed) return Promise.resolve(0);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms);
      this.socket.once('close', () => (clearTimeout(t), resolve(Date.now() - started)));
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}
