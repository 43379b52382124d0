// L4 Dubbo proxy (xRPC protocol "dubbo"): the client's frames are decoded, heartbeats answered locally, and
// each call routed by service/version/method (subordinate routes, else the matched route's upstream),
// balanced per call over the upstream's nodes and sent on a provider connection shared by every client
// (DubboPool). The pool assigns its own request id; the reply goes back under the client's id. Request and
// response bodies are forwarded as bytes, not re-serialized. A call that could not reach a provider
// (connect failure) is re-picked on another node within the upstream's retries; a call that was sent is
// never retried. Failures the gateway answers itself are Dubbo responses with a non-OK status and a message.
// A bad frame from the client closes that client's connection only.
// Each finished call (reply, gateway-made error or timeout) is recorded in the process metrics once they
// exist (apisix_dubbo_calls_total and apisix_dubbo_calls_latency_seconds, through the session's series cache,
// src/observability/metrics.ts), published on the switchyard:dubbo:call diagnostics channel when it has
// subscribers, and offered to the superior route's `protocol.logger` entries (call-log.ts).
import { channel } from 'node:diagnostics_channel';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../src/observability/logger.ts';
import { DubboSeriesCache } from '../../src/observability/metrics.ts';
import type { Endpoint } from '../../src/upstream/balancer.ts';
import type { UpstreamRuntime } from '../../src/upstream/upstream.ts';
import type { XrpcConnection, XrpcHandler } from '../../stream-routes/xrpc.ts';
import {
  HEADER_LENGTH,
  HESSIAN2,
  Status,
  decodeRequestHead,
  encodeErrorResponse,
  encodeHeartbeatResponse,
  isEvent,
  isRequest,
  isTwoWay,
  serializationOf,
  writeHeader,
  type Frame,
  type RequestHead,
} from './codec.ts';
import { CallLog } from './call-log.ts';
import type { RawReply, ReplyHandler, TransportCode } from './connection.ts';
import { FrameDecoder } from './frame-decoder.ts';
import { DubboPool } from './pool.ts';
import { matchSubordinate, routeTable, type RouteTable } from './route-table.ts';

/**
 * Published once per finished call: {route, service, version, method, upstream, status, latencyMs}. `status`
 * is the reply's Dubbo status code as a string ("20", "31" timeout, "60" service not found...), or
 * "exception" for an OK reply whose result is a Java exception.
 */
export const callChannel = channel('switchyard:dubbo:call');

/** Status labels without a string per call. */
const STATUS_LABEL: readonly string[] = Array.from({ length: 256 }, (_, i) => String(i));
const EXCEPTION = 'exception';
/** An OK reply body starts with the response type as a compact hessian2 int (0x90 + type). */
const HESSIAN_TYPE_EXCEPTION = 0x90;
const HESSIAN_TYPE_EXCEPTION_WITH_ATTACHMENTS = 0x93;

const DEFAULT_CALL_TIMEOUT_MS = 60_000;

/** Gateway-side failures as Dubbo statuses: the consumer sees an RpcException with the message. */
const STATUS_OF: Record<TransportCode, number> = {
  timeout: Status.SERVER_TIMEOUT,
  overloaded: Status.SERVER_THREADPOOL_EXHAUSTED_ERROR,
  connect_failed: Status.SERVER_ERROR,
  connection_closed: Status.SERVER_ERROR,
  bad_frame: Status.BAD_RESPONSE,
  closed: Status.SERVER_ERROR,
};

interface Call {
  readonly session: ClientSession;
  readonly clientId: bigint;
  readonly flags: number;
  readonly body: Buffer;
  readonly head: RequestHead;
  readonly routeId: string;
  readonly upstream: UpstreamRuntime;
  readonly startedAt: number;
  /** Epoch ms when the call arrived (logged calls only need it; Date.now() is cheap). */
  readonly startedWall: number;
  endpoint: Endpoint | null;
  tried: Set<string> | null;
  attempts: number;
  sentAt: number;
}

export interface DubboProxyOptions {
  readonly logger: Logger;
  /** Provider connections per node and per-connection multiplexing (see DubboPool). */
  readonly multiplex?: number;
  readonly maxConnections?: number;
  readonly heartbeatMs?: number;
}

export class DubboProxy implements XrpcHandler, ReplyHandler<Call> {
  private readonly pools = new Map<string, DubboPool>();
  private readonly sessions = new Set<ClientSession>();
  private readonly opts: DubboProxyOptions;
  readonly logger: Logger;
  readonly callLog: CallLog;
  private readonly sweeper: NodeJS.Timeout;

  constructor(opts: DubboProxyOptions) {
    this.opts = opts;
    this.logger = opts.logger;
    this.callLog = new CallLog(opts.logger);
    // Pools of nodes no longer used keep no connections (idle eviction); drop them from the map too.
    this.sweeper = setInterval(() => {
      for (const [k, p] of this.pools) {
        if (p.connections > 0) continue;
        p.close();
        this.pools.delete(k);
      }
    }, 60_000);
    this.sweeper.unref();
  }

  serve(conn: XrpcConnection): Promise<number> {
    const compiled = routeTable(conn.route, conn.runtime);
    if (!compiled.ok) {
      this.logger.warn({ route: conn.route.id, reason: compiled.reason }, 'dubbo route conf invalid, connection closed');
      conn.socket.destroy();
      return Promise.resolve(503);
    }
    return new Promise<number>((resolve) => {
      const s = new ClientSession(this, conn, compiled.table, (status) => {
        this.sessions.delete(s);
        this.callLog.release(conn.route);
        resolve(status);
      });
      this.sessions.add(s);
      s.start();
    });
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    for (const s of this.sessions) s.destroy();
    for (const p of this.pools.values()) p.close();
    this.pools.clear();
    this.callLog.close();
  }

  /** Picks a node (skipping the ones tried) and sends; answers the client itself when no node is left. */
  dispatch(call: Call): void {
    const pick = call.upstream.pick({ vars: call.session.conn.ctx.vars, tried: call.tried });
    if (!pick.ok) {
      const msg = call.attempts === 0 ? `no dubbo provider available for ${call.head.service}` : `all dubbo providers failed for ${call.head.service}`;
      call.session.fail(call, call.attempts === 0 ? Status.SERVICE_NOT_FOUND : Status.SERVER_ERROR, msg);
      return;
    }
    const ep = pick.endpoint;
    call.endpoint = ep;
    call.attempts++;
    call.sentAt = performance.now();
    call.upstream.begin(ep);
    this.pool(ep, call.session).send(call.flags, call.body, call.session.timeoutMs, this, call);
  }

  sendOneWay(upstream: UpstreamRuntime, session: ClientSession, frame: Frame): void {
    const pick = upstream.pick({ vars: session.conn.ctx.vars, tried: null });
    if (pick.ok) this.pool(pick.endpoint, session).send(frame.flags, frame.body, 0, null, null);
  }

  onReply(reply: RawReply, call: Call): void {
    const ep = call.endpoint!;
    call.upstream.end(ep, { latencyMs: performance.now() - call.sentAt, failed: !reply.ok });
    if (!reply.ok) {
      const code = reply.error.code;
      this.logger.warn({ route: call.routeId, node: ep.key, service: call.head.service, method: call.head.method, reason: reply.error.message }, 'dubbo call failed');
      if (code === 'connect_failed' && call.attempts <= call.upstream.retries && !call.session.closed) {
        (call.tried ??= new Set()).add(ep.key);
        this.dispatch(call);
        return;
      }
      call.session.fail(call, STATUS_OF[code], reply.error.message);
      return;
    }
    call.session.reply(call, reply.frame);
  }

  private pool(ep: Endpoint, s: ClientSession): DubboPool {
    // hot path
    const key = `${ep.key}|${s.table.maxFrameSize}|${s.conn.connectMs}`;
    let p = this.pools.get(key);
    if (p === undefined) {
      p = new DubboPool({
        host: ep.host,
        port: ep.port,
        connectTimeoutMs: s.conn.connectMs,
        maxFrameSize: s.table.maxFrameSize,
        multiplex: this.opts.multiplex,
        maxConnections: this.opts.maxConnections,
        heartbeatMs: this.opts.heartbeatMs,
        logger: this.logger,
      });
      this.pools.set(key, p);
    }
    return p;
  }
}

/** One client connection. */
class ClientSession {
  readonly conn: XrpcConnection;
  readonly table: RouteTable;
  readonly timeoutMs: number;
  closed = false;
  private readonly proxy: DubboProxy;
  private readonly loggers: ReturnType<CallLog['acquire']>;
  /** Prometheus series of this session's calls (none until the metrics exist). */
  private readonly series = new DubboSeriesCache();
  private readonly socket: Duplex;
  private readonly decoder: FrameDecoder;
  private readonly done: (status: number) => void;
  private inFlight = 0;
  private paused = false;
  private ended = false;
  private status = 200;

  constructor(proxy: DubboProxy, conn: XrpcConnection, table: RouteTable, done: (status: number) => void) {
    this.proxy = proxy;
    this.conn = conn;
    this.table = table;
    this.socket = conn.socket;
    this.decoder = new FrameDecoder(table.maxFrameSize);
    this.done = done;
    this.timeoutMs = table.timeoutMs ?? (conn.upstream.conf.timeout != null ? Math.round(conn.upstream.timeout.read * 1000) : DEFAULT_CALL_TIMEOUT_MS);
    this.loggers = proxy.callLog.acquire(conn.route);
  }

  start(): void {
    const s = this.socket;
    s.on('data', (chunk: Buffer) => this.onData(chunk));
    s.on('end', () => this.onEnd());
    s.on('drain', () => this.flowControl());
    s.on('error', () => s.destroy());
    s.once('close', () => {
      this.closed = true;
      this.done(this.status);
    });
    if ('setTimeout' in s && typeof s.setTimeout === 'function') {
      (s as Duplex & { setTimeout(ms: number, cb: () => void): void }).setTimeout(this.conn.idleMs, () => s.destroy());
    }
    for (const c of this.conn.buffered) this.onData(c);
    if (this.conn.ended) this.onEnd();
    else s.resume();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.decoder.push(chunk);
    for (;;) {
      const step = this.decoder.next();
      if (step.kind === 'need') break;
      if (step.kind === 'error') {
        this.status = 400;
        this.proxy.logger.info({ route: this.conn.route.id, remote: this.conn.ctx.remoteAddr, reason: step.error.message }, 'dubbo client sent a bad frame, connection closed');
        this.closed = true;
        this.socket.destroy();
        return;
      }
      this.onFrame(step.frame);
    }
    this.flowControl();
  }

  private onFrame(f: Frame): void {
    if (!isRequest(f.flags)) return; // heartbeat answers to nobody, or stray responses: nothing to route
    if (isEvent(f.flags)) {
      if (isTwoWay(f.flags)) this.socket.write(encodeHeartbeatResponse(f.requestId, serializationOf(f.flags)));
      return;
    }
    const twoWay = isTwoWay(f.flags);
    if (serializationOf(f.flags) !== HESSIAN2) {
      if (twoWay) this.socket.write(encodeErrorResponse(f.requestId, Status.BAD_REQUEST, `unsupported serialization id ${serializationOf(f.flags)}, only hessian2 (2) is routed`));
      return;
    }
    const head = decodeRequestHead(f.body);
    if (!head.ok) {
      if (twoWay) this.socket.write(encodeErrorResponse(f.requestId, Status.BAD_REQUEST, head.reason));
      return;
    }
    const sub = matchSubordinate(this.table, head.value);
    const upstream = sub?.upstream ?? this.conn.upstream;
    const routeId = sub?.routeId ?? this.conn.route.id;
    if (!twoWay) {
      this.proxy.sendOneWay(upstream, this, f);
      return;
    }
    this.inFlight++;
    this.proxy.dispatch({
      session: this,
      clientId: f.requestId,
      flags: f.flags,
      body: f.body,
      head: head.value,
      routeId,
      upstream,
      startedAt: performance.now(),
      startedWall: this.loggers.length > 0 ? Date.now() : 0,
      endpoint: null,
      tried: null,
      attempts: 0,
      sentAt: 0,
    });
  }

  /** The provider's reply, under the client's request id. */
  reply(call: Call, f: Frame): void {
    if (!this.closed) {
      const h = Buffer.allocUnsafe(HEADER_LENGTH);
      writeHeader(h, 0, f.flags, f.status, call.clientId, f.body.length);
      this.socket.cork();
      this.socket.write(h);
      this.socket.write(f.body);
      this.socket.uncork();
    }
    const t = f.body[0];
    const exception = f.status === Status.OK && (t === HESSIAN_TYPE_EXCEPTION || t === HESSIAN_TYPE_EXCEPTION_WITH_ATTACHMENTS);
    this.finish(call, exception ? EXCEPTION : STATUS_LABEL[f.status]!);
  }

  fail(call: Call, status: number, message: string): void {
    if (!this.closed) this.socket.write(encodeErrorResponse(call.clientId, status, message));
    this.finish(call, STATUS_LABEL[status]!);
  }

  private finish(call: Call, status: string): void {
    // hot path
    this.inFlight--;
    const latencyMs = performance.now() - call.startedAt;
    const h = call.head;
    const series = this.series.get(call.routeId, h.service, h.method);
    if (series !== null) series.record(status, latencyMs);
    if (callChannel.hasSubscribers) {
      callChannel.publish({ route: call.routeId, service: h.service, version: h.version, method: h.method, upstream: call.endpoint?.key, status, latencyMs });
    }
    if (this.loggers.length > 0) {
      const c = this.conn.ctx;
      this.proxy.callLog.log(this.loggers, {
        routeId: call.routeId,
        service: h.service,
        version: h.version,
        method: h.method,
        upstream: call.endpoint?.key,
        status,
        rpcTime: latencyMs / 1000,
        startTime: call.startedWall,
        remoteAddr: c.remoteAddr,
        remotePort: c.remotePort,
        serverAddr: c.serverAddr,
        serverPort: c.serverPort,
        session: c.vars,
      });
    }
    if (this.closed) return;
    if (this.ended && this.inFlight === 0) this.socket.end();
    else this.flowControl();
  }

  private onEnd(): void {
    this.ended = true;
    if (this.inFlight === 0 && !this.closed) this.socket.end();
  }

  /** Stops reading while too many calls are in flight or the client does not read its replies. */
  private flowControl(): void {
    const s = this.socket;
    const hold = this.inFlight >= this.table.maxPending || s.writableNeedDrain;
    if (hold && !this.paused) {
      this.paused = true;
      s.pause();
    } else if (!hold && this.paused) {
      this.paused = false;
      s.resume();
    }
  }
}
