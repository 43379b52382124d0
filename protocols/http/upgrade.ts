// WebSocket (HTTP/1.1 Upgrade) proxying for routes with enable_websocket. After rewrite/access, the gateway
// opens a connection to a picked node, replays the upgrade request, and then pipes bytes both ways
// (backpressure via pipe, closes propagate in both directions).
import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../../src/observability/logger.ts';
import type { PluginResponse } from '../../src/plugin/plugin.ts';
import { runLog, runPhase } from '../../src/plugin/runner.ts';
import type { HttpRuntime } from '../../src/runtime/types.ts';
import type { Endpoint } from '../../src/upstream/balancer.ts';
import type { HttpHandler } from './handler.ts';
import { upstreamHeaders, hostWithPort } from './forward.ts';
import { encodeBody } from './respond.ts';
import type { RequestContext } from './context.ts';

function writeRaw(socket: net.Socket, r: PluginResponse): void {
  const { body, contentType } = encodeBody(r);
  let head = `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? ''}\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n`;
  if (r.headers) for (const k in r.headers) head += `${k}: ${r.headers[k]}\r\n`;
  socket.end(Buffer.concat([Buffer.from(head + '\r\n'), body]));
}

export class UpgradeHandler {
  private readonly handler: HttpHandler;
  private readonly logger: Logger;

  constructor(handler: HttpHandler, logger: Logger) {
    this.handler = handler;
    this.logger = logger;
  }

  handle(req: IncomingMessage, socket: net.Socket, head: Buffer, isTls: boolean): void {
    socket.on('error', () => socket.destroy());
    const ctx = this.handler.createContext(req, null, isTls);
    if (ctx === null) return writeRaw(socket, { status: 400 });
    this.run(ctx, req, socket, head).catch((err: unknown) => {
      this.logger.error({ err, route: ctx.routeId }, 'websocket upgrade failed');
      writeRaw(socket, { status: 500 });
    });
  }

  private async run(ctx: RequestContext, req: IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    const rt: HttpRuntime = this.handler.opts.getRuntime();
    const match = rt.router.match(this.handler.matchInput(ctx));
    if (match === null) return writeRaw(socket, { status: 404, body: { error_msg: '404 Route Not Found' } });
    const route = match.payload;
    ctx.params = match.params;
    ctx.routeId = route.id;
    ctx.serviceId = route.serviceId;
    if (!route.enableWebsocket) {
      return writeRaw(socket, { status: 400, body: { error_msg: 'websocket is not enabled on this route' } });
    }
    let chain = route.chain;
    let r = await runPhase(rt.global, chain, 'rewrite', ctx);
    if (r) return writeRaw(socket, r);
    if (ctx.consumer !== null) {
      chain = rt.consumerChain(route, ctx.consumer);
      r = await runPhase(null, chain, 'rewrite', ctx, true);
      if (r) return writeRaw(socket, r);
    }
    r = await runPhase(rt.global, chain, 'access', ctx);
    if (r) return writeRaw(socket, r);
    const upstream = ctx.upstreamOverride !== null ? rt.resolveUpstream(ctx.upstreamOverride) : route.upstream;
    if (upstream === null) return writeRaw(socket, { status: 503 });

    const tried = new Set<string>();
    const timeout = route.timeout ?? upstream.timeout ?? { connect: 60, send: 60, read: 60 };
    for (let attempt = 0; attempt <= upstream.retries; attempt++) {
      const pick = upstream.pick({ vars: ctx.vars, tried });
      if (!pick.ok) break;
      const ep = pick.endpoint;
      tried.add(ep.key);
      ctx.upstreamAddr = ep.key;
      const up = await this.connect(ep, upstream.scheme === 'https', timeout.connect * 1000, upstream.upstreamHost ?? ep.domain);
      if (up === null) continue;
      upstream.begin(ep);
      const began = performance.now();
      const host =
        upstream.passHost === 'node'
          ? hostWithPort(ep.domain, ep.port, upstream.defaultPort ?? 80)
          : upstream.passHost === 'rewrite'
            ? (upstream.upstreamHost ?? ctx.request.host)
            : (req.headers.host ?? ctx.request.host);
      const headers = upstreamHeaders(ctx.request.headers, {
        host: ctx.request.host,
        peerAddr: ctx.peerAddr,
        remoteAddr: ctx.request.remoteAddr,
        scheme: ctx.request.scheme,
        serverPort: ctx.request.serverPort,
        trusted: this.handler.trusted.trusts(ctx.peerAddr),
        keepTeTrailers: false,
        upgrade: true,
      });
      headers.host = host;
      const q = ctx.request.query;
      let out = `${ctx.request.method} ${ctx.rawPath}${q === '' ? '' : `?${q}`} HTTP/1.1\r\n`;
      for (const k in headers) {
        const v = headers[k]!;
        if (Array.isArray(v)) for (const x of v) out += `${k}: ${x}\r\n`;
        else out += `${k}: ${v}\r\n`;
      }
      up.write(out + '\r\n');
      if (head.length > 0) up.write(head);
      up.setTimeout(timeout.read * 1000, () => up.destroy());
      socket.setTimeout(0);
      up.on('error', () => socket.destroy());
      socket.on('error', () => up.destroy());
      up.pipe(socket);
      socket.pipe(up);
      up.once('close', () => socket.destroy());
      socket.once('close', () => {
        up.destroy();
        upstream.end(ep, { latencyMs: performance.now() - began, failed: false });
        ctx.response.status = 101;
        runLog(rt.global, chain, ctx);
        this.handler.opts.accessLog?.write(ctx, socket.bytesWritten);
      });
      return;
    }
    writeRaw(socket, { status: 502 });
  }

  private connect(ep: Endpoint, secure: boolean, timeoutMs: number, servername: string): Promise<net.Socket | null> {
    return new Promise((resolve) => {
      const s = secure
        ? tls.connect({ host: ep.host, port: ep.port, servername: net.isIP(servername) ? undefined : servername, rejectUnauthorized: false })
        : net.connect({ host: ep.host, port: ep.port });
      const timer = setTimeout(() => {
        s.destroy();
        resolve(null);
      }, timeoutMs);
      s.once(secure ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', () => {
        clearTimeout(timer);
        resolve(null);
      });
    });
  }
}
