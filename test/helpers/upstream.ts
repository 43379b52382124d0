// Real upstream servers for data-plane tests: HTTP/1.1 echo servers that report who answered and what they got.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EchoReply {
  server: string;
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  bodyLength: number;
  /** Request trailers (chunked HTTP/1.1 requests). */
  trailers: Record<string, string>;
  /** The gateway side's port of the connection (tells connection reuse). */
  remotePort: number;
}

export interface EchoServer {
  readonly name: string;
  readonly port: number;
  readonly addr: string;
  /** Requests seen, in order. */
  readonly seen: EchoReply[];
  close(): Promise<void>;
}

export interface EchoOptions {
  port?: number;
  host?: string;
  /** Delay every answer by this many ms (a slow node). */
  delayMs?: number;
}

/**
 * An echo upstream. Paths: `/delay/<ms>` answers after a delay, `/status/<code>` answers that status,
 * `/bytes/<n>` streams n bytes, `/trailers` answers chunked with trailers `x-upstream-trailer: done` and
 * `x-body-length`; anything else echoes the request as JSON (body drained, length counted, trailers kept).
 */
export async function startEcho(name: string, opts: EchoOptions = {}): Promise<EchoServer> {
  const seen: EchoReply[] = [];
  const server = http.createServer((req, res) => {
    let len = 0;
    req.on('data', (c: Buffer) => (len += c.length));
    req.on('end', () => {
      const reply: EchoReply = {
        server: name,
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        bodyLength: len,
        trailers: req.trailers as Record<string, string>,
        remotePort: req.socket.remotePort ?? 0,
      };
      seen.push(reply);
      const url = req.url ?? '/';
      const delay = /^\/delay\/(\d+)/.exec(url);
      const status = /^\/status\/(\d+)/.exec(url);
      const bytes = /^\/bytes\/(\d+)/.exec(url);
      const send = () => {
        if (bytes) {
          let left = Number(bytes[1]);
          const chunk = Buffer.alloc(64 * 1024, 120);
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left), 'x-upstream': name });
          const pump = () => {
            while (left > 0) {
              const n = Math.min(left, chunk.length);
              left -= n;
              if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
            }
            res.end();
          };
          pump();
          return;
        }
        const body = JSON.stringify(reply);
        if (url.startsWith('/trailers')) {
          res.writeHead(200, { 'content-type': 'application/json', trailer: 'x-upstream-trailer, x-body-length', 'x-upstream': name });
          res.write(body);
          res.addTrailers({ 'x-upstream-trailer': 'done', 'x-body-length': String(len) });
          res.end();
          return;
        }
        res.writeHead(status ? Number(status[1]) : 200, { 'content-type': 'application/json', 'x-upstream': name });
        res.end(body);
      };
      const wait = (delay ? Number(delay[1]) : 0) + (opts.delayMs ?? 0);
      if (wait > 0) setTimeout(send, wait);
      else send();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    port,
    addr: `127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
