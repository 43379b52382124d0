// HTTP listeners on the shared pipeline: cleartext (HTTP/1.1 and h2c prior knowledge on one port: the first
// bytes decide) and TLS (HTTP/1.1 and h2 by ALPN, certificates by SNI from the shared certificate store). Both
// hand connections to one pair of node servers whose requests go through the node adapter.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { Listener, ListenerAddress } from '../../src/listener/registry.ts';
import type { Logger } from '../../src/observability/logger.ts';
import type { HttpPipeline } from '../../src/pipeline/pipeline.ts';
import type { CertificateStore } from '../../src/tls/store.ts';
import { rawAnswer, refusalCode } from '../../src/pipeline/raw-answer.ts';
import { Http1Engine } from '../http1/engine.ts';
import { handleNodeRequest, handleNodeUpgrade, wantsUpgrade } from './node-adapter.ts';
import { TlsAcceptor } from './tls-accept.ts';
import { tagCertificates, tlsInfoFor } from './tls-info.ts';

export interface HttpLimits {
  max_header_size: number;
  max_headers_count: number;
  client_header_timeout: number;
  client_body_timeout: number;
  keepalive_timeout: number;
  graceful_shutdown_timeout: number;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * HTTP/2 rapid-reset defence (CVE-2023-44487): streams the client cancels before getting a response head cost
 * the gateway a request each. More than RESET_BUDGET of them within RESET_WINDOW_MS end the session with
 * GOAWAY ENHANCE_YOUR_CALM, so a reset flood costs the attacker a new connection (and handshake) per budget.
 */
const RESET_BUDGET = 100;
const RESET_WINDOW_MS = 10_000;
const kResets = Symbol('switchyard.h2resets');
const kSession = Symbol('switchyard.h2session');
type ResetTagged = http2.ServerHttp2Session & { [kResets]?: { count: number; since: number } };
type StreamTagged = http2.ServerHttp2Stream & { [kSession]?: ResetTagged };

/**
 * True when the request whose body node:http refused already has a response under way or sent (a plugin
 * answered before reading the body): a refusal written then would be a second, unsolicited response, so the
 * connection is only closed, as the socket engine does. node:http internals: _httpMessage is the in-flight
 * response (node's default clientError checks it the same way; null once a response ended), parser.incoming the
 * message whose body is being parsed.
 */
function responseBegun(socket: object): boolean {
  const s = socket as { _httpMessage?: { _headerSent?: boolean } | null; parser?: { incoming?: { complete?: boolean } | null } | null };
  if (s._httpMessage != null) return s._httpMessage._headerSent === true;
  const incoming = s.parser?.incoming;
  return incoming != null && incoming.complete === false;
}

function watchResets(stream: http2.ServerHttp2Stream): void {
  // A closed stream is detached from its session: remember it now.
  (stream as StreamTagged)[kSession] = stream.session as ResetTagged;
  stream.on('close', onH2StreamClose);
}

/**
 * node runs this while nghttp2 is still parsing the read that carried the RST_STREAM: node drains the tick queue
 * after every nghttp2 callback, and a reset stream's 'close' is a tick. Destroyed here, the session stops reading
 * at once, and the rest of that read (a flood packs thousands of HEADERS+RST_STREAM pairs in it) is left to
 * nghttp2 alone: no JavaScript stream objects, no compat request/response.
 */
function onH2StreamClose(this: http2.ServerHttp2Stream): void {
  // Only resets that arrive before the response head count: a client cancelling a long download is normal.
  if (this.rstCode !== http2.constants.NGHTTP2_CANCEL || this.headersSent) return;
  const session = (this as StreamTagged)[kSession];
  if (session === undefined || session.destroyed) return;
  const now = Date.now();
  let r = session[kResets];
  if (r === undefined || now - r.since > RESET_WINDOW_MS) r = session[kResets] = { count: 0, since: now };
  if (++r.count > RESET_BUDGET) {
    // destroy() alone would send GOAWAY NO_ERROR (an error argument instead would build an Error and emit
    // 'sessionError'): the ENHANCE_YOUR_CALM GOAWAY is queued first and flushed with it.
    session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    session.destroy();
  }
}

/** Readable options of compat requests: node's defaults (one shared object, only read). */
const NO_OPTIONS = Object.freeze({});

type NodeHandler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;

/**
 * Starts HTTP/2 requests once per event-loop turn, after the poll phase (setImmediate), when every read of the
 * turn has been parsed. node announces a stream right after nghttp2 parsed its HEADERS, before the rest of the
 * read (it drains the tick queue after every nghttp2 callback): a RST_STREAM later in the same read (the
 * rapid-reset pattern: thousands of HEADERS+RST_STREAM pairs per read) is seen only afterwards, so a request
 * started at once, or on the next tick, would run the pipeline (route, pick, upstream connect) for a stream
 * already cancelled. Started at the end of the turn, a stream reset meanwhile, or one of a session ended over
 * its reset budget, costs no pipeline run and no compat request/response either: the h2 server has no 'request'
 * listener (node would build both on 'stream'), they are built here for live streams only, as node's compat
 * layer does (lib/internal/http2/compat.js onServerStream). Request trailers that arrived in the same turn
 * miss the compat request (the pipeline does not read request trailers). One immediate per turn and two
 * reused arrays: nothing per request.
 */
class H2Starter {
  private readonly handle: NodeHandler;
  /** Triples stream, headers, raw headers of the current turn. */
  private queue: unknown[] = [];
  private spare: unknown[] = [];
  private scheduled = false;

  constructor(handle: NodeHandler) {
    this.handle = handle;
    this.run = this.run.bind(this);
  }

  push(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[]): void {
    // hot path
    this.queue.push(stream, headers, rawHeaders);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }

  private run(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = this.spare;
    for (let i = 0; i < batch.length; i += 3) {
      const stream = batch[i] as http2.ServerHttp2Stream;
      if (stream.destroyed || stream.closed) continue;
      this.start(stream, batch[i + 1] as http2.IncomingHttpHeaders, batch[i + 2] as string[]);
    }
    batch.length = 0;
    this.spare = batch;
  }

  private start(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[]): void {
    // hot path
    const req = new http2.Http2ServerRequest(stream, headers, NO_OPTIONS, rawHeaders);
    const res = new http2.Http2ServerResponse(stream);
    // node's compat answers when the server has no 'connect', 'checkContinue' or 'checkExpectation' listener:
    // CONNECT is refused (extended CONNECT is not enabled), 100-continue is granted, other expectations fail.
    if (headers[':method'] === 'CONNECT') {
      res.statusCode = 405;
      res.end();
      return;
    }
    const expect = headers.expect;
    if (expect !== undefined) {
      if (expect !== '100-continue') {
        res.statusCode = 417;
        res.end();
        return;
      }
      res.writeContinue();
    }
    this.handle(req, res);
  }
}

/** The node servers behind one listener; they never listen themselves (the listener hands them sockets). */
class NodeServers {
  readonly h1: http.Server;
  readonly h2: http2.Http2Server;
  readonly sessions = new Set<http2.ServerHttp2Session>();
  /** switchyard.http1_engine: socket serves HTTP/1.1 connections itself instead of node:http (protocols/http1). */
  readonly socketEngine: Http1Engine | null;
  private readonly limits: HttpLimits;

  constructor(pipeline: HttpPipeline, limits: HttpLimits, altSvc: string | undefined, http1Engine: 'node' | 'socket') {
    this.limits = limits;
    this.socketEngine = http1Engine === 'socket'
      ? new Http1Engine({ pipeline, limits, altSvc, tlsInfo: tlsInfoFor, h2c: (socket) => this.h2.emit('connection', socket) })
      : null;
    // HTTP/3 on this port is advertised on every answer (RFC 7838); an upstream's own alt-svc replaces it.
    const handle = altSvc === undefined
      ? (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => handleNodeRequest(pipeline, req, res)
      : (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
          res.setHeader('alt-svc', altSvc);
          handleNodeRequest(pipeline, req, res);
        };
    const starter = new H2Starter(handle);
    const h1 = http.createServer(
      {
        maxHeaderSize: limits.max_header_size,
        headersTimeout: limits.client_header_timeout * 1000,
        // How often headersTimeout is enforced (node's default of 30 s would let slow-header clients linger).
        connectionsCheckingInterval: Math.min(1000, limits.client_header_timeout * 1000),
        requestTimeout: 0,
        keepAliveTimeout: limits.keepalive_timeout * 1000,
        // Host rules (none on HTTP/1.1, duplicates) are the pipeline's, answered 400 with the catalog's body.
        requireHostHeader: false,
        noDelay: true,
        // Upgrades leave the request path only for routes that tunnel them (APISIX proxies others as plain).
        shouldUpgradeCallback: (req) => wantsUpgrade(pipeline, req),
      },
      handle,
    );
    h1.maxHeadersCount = limits.max_headers_count;
    // h1 never listens itself, so start what node's http server starts on 'listening': connection tracking
    // (closeAllConnections/closeIdleConnections) and the periodic headersTimeout check.
    h1.emit('listening');
    // Idle socket timeout: covers slow request bodies and stalled keep-alive connections.
    h1.setTimeout(limits.client_body_timeout * 1000);
    h1.on('upgrade', (req, socket, head) => handleNodeUpgrade(pipeline, req, socket, head));
    h1.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (!socket.writable || responseBegun(socket)) return socket.destroy();
      socket.end(rawAnswer(refusalCode(err.code)));
    });
    this.h1 = h1;

    const h2 = http2.createServer(
      {
        maxHeaderListPairs: limits.max_headers_count,
        maxSessionMemory: 32,
        // Streams a client may keep open at once; the reset budget (RESET_BUDGET) bounds how fast it may cycle them.
        settings: { maxHeaderListSize: limits.max_header_size, maxConcurrentStreams: 128 },
        // Refused/invalid streams and frames end the session early (node's own flood limits).
        maxSessionRejectedStreams: 100,
        maxSessionInvalidFrames: 1000,
      },
    );
    h2.setTimeout(limits.keepalive_timeout * 1000);
    h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      watchResets(stream);
      starter.push(stream, headers, rawHeaders);
    });
    h2.on('session', (s) => {
      this.sessions.add(s);
      s.once('close', () => this.sessions.delete(s));
    });
    this.h2 = h2;
  }

  /** An HTTP/1.1 connection (cleartext or TLS); `first` holds bytes already read from it. */
  acceptH1(socket: net.Socket, first?: Buffer): void {
    if (this.socketEngine !== null) return this.socketEngine.accept(socket);
    this.h1.emit('connection', socket);
    if (first !== undefined) socket.emit('data', first);
  }

  async close(graceful: boolean, stopAccepting: Promise<void>): Promise<void> {
    const engineClosed = this.socketEngine?.close(graceful);
    // Stops h1's connection-checking timer; the "not running" error of a never-listening server is expected.
    this.h1.close(() => undefined);
    if (!graceful) {
      this.h1.closeAllConnections();
      for (const s of this.sessions) s.destroy();
      await stopAccepting;
      await engineClosed;
      return;
    }
    this.h1.closeIdleConnections();
    for (const s of this.sessions) s.close();
    const deadline = setTimeout(() => {
      this.h1.closeAllConnections();
      for (const s of this.sessions) s.destroy();
    }, this.limits.graceful_shutdown_timeout * 1000);
    deadline.unref();
    // In-flight HTTP/1.1 requests finish; their connections close after the response.
    const idle = setInterval(() => this.h1.closeIdleConnections(), 200);
    idle.unref();
    await stopAccepting;
    await engineClosed;
    clearInterval(idle);
    clearTimeout(deadline);
  }
}

function bind(server: net.Server, host: string, port: number): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: false }, () => {
      server.off('error', reject);
      const a = server.address() as net.AddressInfo;
      resolve({ host: a.address, port: a.port });
    });
  });
}

export interface HttpListenerOptions {
  host: string;
  port: number;
  h2c: boolean;
  limits: HttpLimits;
  pipeline: HttpPipeline;
  logger: Logger;
  /** switchyard.http1_engine (its config default is socket). */
  http1Engine: 'node' | 'socket';
}

/** Cleartext HTTP/1.1 and (optionally) h2c prior knowledge on one port. */
export function createHttpListener(opts: HttpListenerOptions): Listener {
  const { limits } = opts;
  const servers = new NodeServers(opts.pipeline, limits, undefined, opts.http1Engine);
  const { h2 } = servers;
  // Sockets whose first bytes have not arrived yet belong to neither server; a forced close must end them too.
  const sniffing = new Set<net.Socket>();
  const engine = servers.socketEngine;
  const server = net.createServer({ noDelay: true, pauseOnConnect: false }, (socket) => {
    if (!opts.h2c) {
      servers.acceptH1(socket);
      return;
    }
    // The socket engine sniffs the first bytes itself, without a timer and listeners per connection.
    if (engine !== null) {
      engine.accept(socket, true);
      return;
    }
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
        h2.emit('connection', socket);
        return;
      }
      // The http server takes the socket's handle over (its native parser reads it from now on); the first
      // chunk, already read, reaches it as one 'data' event.
      servers.acceptH1(socket, chunk);
    });
  });
  server.on('error', (err) => opts.logger.error({ err }, 'http listener error'));
  let bound = { host: opts.host, port: opts.port };
  return {
    kind: 'http',
    listen: async () => {
      bound = await bind(server, opts.host, opts.port);
    },
    close: async ({ graceful }) => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sniffing) s.destroy();
      await servers.close(graceful, closed);
    },
    addresses: (): ListenerAddress[] => [{ protocol: 'http', ...bound }],
  };
}

export interface HttpsListenerOptions {
  host: string;
  port: number;
  /** ALPN h2 (apisix.enable_http2). */
  h2: boolean;
  limits: HttpLimits;
  pipeline: HttpPipeline;
  /** The shared store; its contexts carry apisix.ssl.ssl_protocols and ssl_ciphers (src/tls/store.ts). */
  certificates: () => CertificateStore | null;
  /** apisix.ssl.fallback_sni. */
  fallbackSni?: string;
  /** `alt-svc` value when HTTP/3 listens on this port (`enable_http3`). */
  altSvc?: string;
  logger: Logger;
  /** switchyard.http1_engine (its config default is socket). */
  http1Engine: 'node' | 'socket';
}

/**
 * TLS termination with the ssl object chosen per connection from the shared store by the ClientHello's SNI
 * (tls-accept.ts; a certificate changed through the Admin API or etcd serves the next handshake, open connections
 * keep theirs), then HTTP/1.1 or h2 by ALPN.
 */
export function createHttpsListener(opts: HttpsListenerOptions): Listener {
  const { limits } = opts;
  const servers = new NodeServers(opts.pipeline, limits, opts.altSvc, opts.http1Engine);
  const { h2 } = servers;
  const acceptor = new TlsAcceptor({
    certificates: opts.certificates,
    fallbackSni: opts.fallbackSni,
    handshakeMs: limits.client_header_timeout * 1000,
    alpn: opts.h2 ? ['h2', 'http/1.1'] : ['http/1.1'],
    logger: opts.logger,
    onSecure: (socket) => {
      tagCertificates(socket, opts.certificates);
      if (socket.alpnProtocol === 'h2') h2.emit('connection', socket);
      else servers.acceptH1(socket);
    },
  });
  const server = acceptor.server;
  server.on('error', (err) => opts.logger.error({ err }, 'https listener error'));
  let bound = { host: opts.host, port: opts.port };
  return {
    kind: 'https',
    listen: async () => {
      bound = await bind(server, opts.host, opts.port);
    },
    close: async ({ graceful }) => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      acceptor.dropPending();
      await servers.close(graceful, closed);
    },
    addresses: (): ListenerAddress[] => [{ protocol: 'https', ...bound }],
  };
}
