// A scripted HTTP/1.1 upstream on a raw net.Server for the socket-level upstream client's tests: it reads
// requests (content-length and chunked bodies, several per connection) and lets each test answer with exact
// bytes (malformed, split, partial, or none), so framing and failure paths can be driven deterministically.
import net from 'node:net';

export interface RawRequest {
  readonly method: string;
  readonly path: string;
  /** Lowercase names; repeated fields joined with ', '. */
  readonly headers: Record<string, string>;
  readonly head: string;
  readonly body: Buffer;
  /** Connection number (1-based, in accept order). */
  readonly conn: number;
  /** Request number on its connection (1-based). */
  readonly seq: number;
}

export interface RawUpstream {
  readonly port: number;
  readonly requests: RawRequest[];
  /** Connections accepted so far. */
  accepted(): number;
  /** Connections still open. */
  open(): number;
  /** Server-side sockets, by connection number. */
  socket(conn: number): net.Socket | undefined;
  close(): Promise<void>;
}

export type Respond = (socket: net.Socket, req: RawRequest) => void;

export async function rawUpstream(respond: Respond): Promise<RawUpstream> {
  const requests: RawRequest[] = [];
  const sockets = new Map<number, net.Socket>();
  let accepted = 0;
  const server = net.createServer((s) => {
    const conn = ++accepted;
    sockets.set(conn, s);
    s.on('close', () => sockets.delete(conn));
    s.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let seq = 0;
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (let i = 0; i < 100; i++) {
        const parsed = parseRequest(buf);
        if (parsed === null) return;
        buf = buf.subarray(parsed.used);
        const req: RawRequest = { ...parsed.req, conn, seq: ++seq };
        requests.push(req);
        respond(s, req);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    requests,
    accepted: () => accepted,
    open: () => sockets.size,
    socket: (n) => sockets.get(n),
    close: async () => {
      for (const s of sockets.values()) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function parseRequest(buf: Buffer): { req: Omit<RawRequest, 'conn' | 'seq'>; used: number } | null {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = buf.subarray(0, end).toString('latin1');
  const [line, ...fields] = head.split('\r\n');
  const [method, path] = line!.split(' ');
  const headers: Record<string, string> = {};
  for (const f of fields) {
    const c = f.indexOf(':');
    const k = f.slice(0, c).trim().toLowerCase();
    const v = f.slice(c + 1).trim();
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  let at = end + 4;
  let body = Buffer.alloc(0);
  if (headers['transfer-encoding'] === 'chunked') {
    const parts: Buffer[] = [];
    for (;;) {
      const eol = buf.indexOf('\r\n', at);
      if (eol < 0) return null;
      const size = parseInt(buf.subarray(at, eol).toString('latin1'), 16);
      if (size === 0) {
        const fin = buf.indexOf('\r\n\r\n', eol);
        if (fin < 0) return null;
        at = fin + 4;
        break;
      }
      if (buf.length < eol + 2 + size + 2) return null;
      parts.push(buf.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (buf.length < at + n) return null;
    body = Buffer.from(buf.subarray(at, at + n));
    at += n;
  }
  return { req: { method: method!, path: path!, headers, head, body }, used: at };
}

/** `HTTP/1.1 <status>` with `headers` and a content-length body. */
export function reply(status: number, body = '', headers: Record<string, string> = {}): string {
  let h = `HTTP/1.1 ${status} X\r\n`;
  for (const [k, v] of Object.entries(headers)) h += `${k}: ${v}\r\n`;
  return `${h}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}
