// Adapts node:http (HTTP/1.1) and node:http2 (h2c, h2 over TLS, compatibility API) requests to the shared
// pipeline: a PipelineRequest plus a Downstream over the node response object. Listeners are module-level
// functions that find their downstream on the emitter (no per-request closures).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import type { Downstream, DownstreamEvents, PipelineRequest, TlsInfo } from '../../src/pipeline/downstream.ts';
import type { HttpPipeline } from '../../src/pipeline/pipeline.ts';
import type { HeaderMap } from '../../src/plugin/context.ts';
import { requestAuthority } from '../../src/pipeline/authority.ts';
import { tlsInfoFor } from './tls-info.ts';

export type AnyRequest = IncomingMessage | Http2ServerRequest;
type AnyResponse = ServerResponse | Http2ServerResponse;

const kDown = Symbol('switchyard.downstream');
/** Connection-specific fields HTTP/2 forbids (RFC 9113 8.2.2); node:http2 throws on them. */
const H2_FORBIDDEN = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host']);
type Tagged = { [kDown]?: NodeDownstream };

function normalizeAddr(a: string | undefined): string {
  if (a === undefined) return '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/**
 * The authority of the request: `:authority` (h2), else Host. null when an HTTP/1.1 request has none or
 * several Host headers (RFC 9112 3.2): the pipeline answers 400.
 */
function authorityOf(req: AnyRequest): string | null {
  const authority = req.headers[':authority'];
  if (typeof authority === 'string') return authority;
  if (req.httpVersionMajor === 1) {
    let seen = 0;
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i]!;
      if (k.length === 4 && k.toLowerCase() === 'host') seen++;
    }
    if (seen > 1 || (seen === 0 && req.httpVersionMinor >= 1)) return null;
  }
  return req.headers.host ?? '';
}

function hasBody(req: AnyRequest): boolean {
  const h = req.headers;
  if (h['content-length'] !== undefined) return h['content-length'] !== '0';
  if (h['transfer-encoding'] !== undefined) return true;
  // HTTP/2 requests carry no framing header; END_STREAM tells.
  if (req.httpVersionMajor !== 2) return false;
  const stream = (req as Http2ServerRequest).stream;
  return stream !== undefined && !stream.readableEnded && !stream.endAfterHeaders;
}

export function pipelineRequest(req: AnyRequest, upgrade: boolean): PipelineRequest {
  const sock = req.socket as Socket | undefined;
  const authority = authorityOf(req);
  // TLS facts for the authority the pipeline will route (an absolute-form target's, else Host).
  const tls: TlsInfo | null = tlsInfoFor(sock, requestAuthority(req.url ?? '/', authority));
  return {
    method: req.method ?? 'GET',
    target: req.url ?? '/',
    authority,
    headers: req.headers as HeaderMap,
    httpVersion: req.httpVersion,
    remoteAddr: normalizeAddr(sock?.remoteAddress),
    remotePort: sock?.remotePort ?? 0,
    serverAddr: normalizeAddr(sock?.localAddress),
    serverPort: sock?.localPort ?? 0,
    tls,
    body: !upgrade && hasBody(req) ? req : null,
    upgrade,
  };
}

/**
 * A Downstream over a node:http ServerResponse or a node:http2 compatibility response.
 *
 * gRPC trailers-only responses (a head carrying grpc-status, then the end with no body) must be ONE HEADERS
 * frame with END_STREAM: grpc-js reads grpc-status from the head only then, and reports INTERNAL otherwise.
 * The compat API always sends the head and ends the stream with a separate frame, so on h2 such a head is
 * held until end() and sent on the stream itself.
 */
class NodeDownstream implements Downstream {
  private readonly res: AnyResponse;
  private events: DownstreamEvents | null = null;
  private readonly h2: boolean;
  private heldStatus = 0;
  private held: HeaderMap | null = null;

  constructor(res: AnyResponse, h2: boolean) {
    this.res = res;
    this.h2 = h2;
  }

  get headSent(): boolean {
    return this.held !== null || this.res.headersSent;
  }

  head(status: number, headers: HeaderMap): void {
    // hot path
    if (this.h2 && headers['grpc-status'] !== undefined) {
      this.heldStatus = status;
      this.held = headers;
      return;
    }
    (this.res as ServerResponse).writeHead(status, headers as Record<string, string | string[]>);
  }

  data(chunk: Buffer): boolean {
    if (this.held !== null) this.release();
    return (this.res as ServerResponse).write(chunk);
  }

  end(trailers: Record<string, string> | null): void {
    const held = this.held;
    if (held !== null) {
      const stream = (this.res as Http2ServerResponse).stream;
      if (stream.destroyed || stream.headersSent) return;
      const out: Record<string, string | string[]> = { ':status': String(this.heldStatus) };
      for (const k in held) {
        const v = held[k];
        if (v !== undefined && !H2_FORBIDDEN.has(k)) out[k] = v;
      }
      if (trailers !== null) for (const k in trailers) out[k] = trailers[k]!;
      this.held = null;
      stream.respond(out, { endStream: true });
      return;
    }
    if (trailers !== null) this.res.addTrailers(trailers);
    this.res.end();
  }

  private release(): void {
    const held = this.held!;
    this.held = null;
    (this.res as ServerResponse).writeHead(this.heldStatus, held as Record<string, string | string[]>);
  }

  abort(): void {
    this.res.destroy();
  }

  listen(events: DownstreamEvents): void {
    this.events = events;
    const res = this.res as AnyResponse & Tagged;
    res[kDown] = this;
    res.on('drain', onDrain);
    res.once('close', onClose);
  }

  fire(close: boolean): void {
    if (close) this.events?.onClose();
    else this.events?.onDrain();
  }
}

function onDrain(this: Tagged): void {
  this[kDown]!.fire(false);
}

function onClose(this: Tagged): void {
  this[kDown]!.fire(true);
}

/** Every non-upgrade request of the HTTP/1.1 and HTTP/2 servers. */
export function handleNodeRequest(pipeline: HttpPipeline, req: AnyRequest, res: AnyResponse): void {
  // hot path
  pipeline.handle(pipelineRequest(req, false), new NodeDownstream(res, req.httpVersionMajor === 2));
}

/**
 * A Downstream over the raw connection of an HTTP/1.1 Upgrade request: local answers are written as complete
 * HTTP/1.1 responses (the connection closes after them); the tunnel takes the socket over.
 */
class UpgradeDownstream implements Downstream {
  private readonly socket: Duplex;
  private readonly rest: Buffer;
  private sent = false;
  private chunked = false;
  private events: DownstreamEvents | null = null;

  constructor(socket: Duplex, rest: Buffer) {
    this.socket = socket;
    this.rest = rest;
  }

  get headSent(): boolean {
    return this.sent;
  }

  head(status: number, headers: HeaderMap): void {
    this.sent = true;
    let out = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
    this.chunked = headers['content-length'] === undefined;
    for (const k in headers) {
      const v = headers[k];
      if (v === undefined || k === 'connection' || k === 'transfer-encoding') continue;
      if (Array.isArray(v)) for (const x of v) out += `${k}: ${x}\r\n`;
      else out += `${k}: ${v}\r\n`;
    }
    if (this.chunked) out += 'transfer-encoding: chunked\r\n';
    this.socket.write(`${out}connection: close\r\n\r\n`);
  }

  data(chunk: Buffer): boolean {
    if (chunk.length === 0) return true;
    if (!this.chunked) return this.socket.write(chunk);
    this.socket.write(`${chunk.length.toString(16)}\r\n`);
    this.socket.write(chunk);
    return this.socket.write('\r\n');
  }

  end(trailers: Record<string, string> | null): void {
    if (this.chunked) {
      let t = '0\r\n';
      if (trailers !== null) for (const k in trailers) t += `${k}: ${trailers[k]}\r\n`;
      this.socket.end(`${t}\r\n`);
    } else this.socket.end();
  }

  abort(): void {
    this.socket.destroy();
  }

  listen(events: DownstreamEvents): void {
    this.events = events;
    this.socket.on('drain', () => this.events?.onDrain());
    this.socket.once('close', () => this.events?.onClose());
  }

  takeover(): { socket: Duplex; head: Buffer } {
    this.sent = true;
    return { socket: this.socket, head: this.rest };
  }
}

/** An HTTP/1.1 Upgrade request the pipeline wants to tunnel (see HttpPipeline.upgradeWanted). */
export function handleNodeUpgrade(pipeline: HttpPipeline, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => socket.destroy());
  pipeline.handle(pipelineRequest(req, true), new UpgradeDownstream(socket, head));
}

/** node:http's shouldUpgradeCallback: WebSocket upgrades on routes that tunnel them. */
export function wantsUpgrade(pipeline: HttpPipeline, req: IncomingMessage): boolean {
  const up = req.headers.upgrade;
  if (up === undefined || !up.toLowerCase().includes('websocket')) return false;
  return pipeline.upgradeWanted(pipelineRequest(req, true));
}
