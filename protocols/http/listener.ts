// HTTP listener: HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on one port. The first bytes of a connection
// decide: the HTTP/2 preface goes to the h2 server, anything else to the HTTP/1.1 server.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { Logger } from '../../src/observability/logger.ts';
import type { HttpHandler } from './handler.ts';
import type { UpgradeHandler } from './upgrade.ts';

export interface HttpLimits {
  max_header_size: number;
  max_headers_count: number;
  client_header_timeout: number;
  client_body_timeout: number;
  keepalive_timeout: number;
  graceful_shutdown_timeout: number;
}

export interface HttpListenerOptions {
  host: string;
  port: number;
  h2c: boolean;
  limits: HttpLimits;
  handler: HttpHandler;
  upgrade: UpgradeHandler;
  logger: Logger;
}

export interface Listener {
  readonly protocol: string;
  listen(): Promise<void>;
  close(opts: { graceful: boolean }): Promise<void>;
  address(): { host: string; port: number };
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * Only WebSocket upgrades take the upgrade path. Any other `Upgrade` (curl --http2 sends `Upgrade: h2c` over
 * plain HTTP) is an ordinary request, as with nginx: the Upgrade header is dropped as hop-by-hop.
 */
function isWebSocketUpgrade(req: http.IncomingMessage): boolean {
  const up = req.headers.upgrade;
  return up !== undefined && up.toLowerCase().includes('websocket');
}

export function createHttpListener(opts: HttpListenerOptions): Listener {
  const { limits, handler } = opts;
  const h1 = http.createServer(
    {
      maxHeaderSize: limits.max_header_size,
      headersTimeout: limits.client_header_timeout * 1000,
      // How often headersTimeout is enforced (node's default of 30 s would let slow-header clients linger).
      connectionsCheckingInterval: Math.min(1000, limits.client_header_timeout * 1000),
      requestTimeout: 0,
      keepAliveTimeout: limits.keepalive_timeout * 1000,
      requireHostHeader: false,
      noDelay: true,
      shouldUpgradeCallback: isWebSocketUpgrade,
    },
    (req, res) => handler.handle(req, res, false),
  );
  h1.maxHeadersCount = limits.max_headers_count;
  // h1 never listens itself (the net server below hands it sockets), so start what node's http server starts
  // on 'listening': connection tracking (closeAllConnections/closeIdleConnections are no-ops without it) and
  // the periodic headersTimeout check (slow-header clients are never cut off without it).
  h1.emit('listening');
  // Idle socket timeout: covers slow request bodies and stalled keep-alive connections.
  h1.setTimeout(limits.client_body_timeout * 1000);
  h1.on('upgrade', (req, socket, head) => opts.upgrade.handle(req, socket as net.Socket, head, false));
  h1.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });

  let h2: http2.Http2Server | null = null;
  const sessions = new Set<http2.ServerHttp2Session>();
  if (opts.h2c) {
    h2 = http2.createServer(
      { maxHeaderListPairs: limits.max_headers_count, maxSessionMemory: 32, settings: { maxHeaderListSize: limits.max_header_size } },
      (req, res) => handler.handle(req, res, false),
    );
    h2.setTimeout(limits.keepalive_timeout * 1000);
    h2.on('session', (s) => {
      sessions.add(s);
      s.once('close', () => sessions.delete(s));
    });
  }

  // Sockets whose first bytes have not arrived yet belong to neither server; a forced close must end them too.
  const sniffing = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true, pauseOnConnect: false }, (socket) => {
    if (h2 === null) {
      h1.emit('connection', socket);
      return;
    }
    const h2s = h2;
    sniffing.add(socket);
    socket.once('close', () => sniffing.delete(socket));
    socket.setTimeout(limits.client_header_timeout * 1000, () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      sniffing.delete(socket);
      socket.setTimeout(0);
      const n = Math.min(chunk.length, PREFACE.length);
      const isH2 = chunk.subarray(0, n).equals(PREFACE.subarray(0, n)) && n >= 3;
      if (isH2) {
        // The h2 session reads the unshifted preface itself; a flowing JS stream would steal it.
        socket.pause();
        socket.unshift(chunk);
        h2s.emit('connection', socket);
        return;
      }
      // The http server takes the socket's handle over (its native parser reads it from now on, no JS stream
      // in between); the first chunk, already read, reaches it as one 'data' event. Unshifting it instead
      // would leave the connection on the slower JS-stream read path.
      h1.emit('connection', socket);
      socket.emit('data', chunk);
    });
  });
  server.on('error', (err) => opts.logger.error({ err }, 'http listener error'));

  let bound = { host: opts.host, port: opts.port };
  return {
    protocol: 'http',
    listen: () =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: opts.host, port: opts.port, exclusive: false }, () => {
          server.off('error', reject);
          const a = server.address() as net.AddressInfo;
          bound = { host: a.address, port: a.port };
          resolve();
        });
      }),
    close: async ({ graceful }) => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Stops h1's connection-checking timer; the "not running" error of a never-listening server is expected.
      h1.close(() => undefined);
      for (const s of sniffing) s.destroy();
      if (!graceful) {
        h1.closeAllConnections();
        for (const s of sessions) s.destroy();
      } else {
        h1.closeIdleConnections();
        for (const s of sessions) s.close();
        const deadline = setTimeout(() => {
          h1.closeAllConnections();
          for (const s of sessions) s.destroy();
        }, limits.graceful_shutdown_timeout * 1000);
        deadline.unref();
        // In-flight HTTP/1.1 requests finish; their connections close after the response.
        const idle = setInterval(() => h1.closeIdleConnections(), 200);
        idle.unref();
        await closed;
        clearInterval(idle);
        clearTimeout(deadline);
        return;
      }
      await closed;
    },
    address: () => bound,
  };
}
