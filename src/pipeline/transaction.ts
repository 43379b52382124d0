// One request's state in the pipeline. It is at once the Downstream's listener (drain, close), the upstream
// attempt's owner (ProxyJob: requestFor/attempting, cancellation) and the response body's sink (BodySink), so
// the request path needs no per-request closures. Exactly one log phase runs, whatever ends the exchange.
import { Readable } from 'node:stream';
import type { PluginChain } from '../plugin/chain.ts';
import { runBodyFilter, runHeaderFilter } from '../plugin/runner.ts';
import type { HttpRoute, HttpRuntime, TimeoutConf } from '../runtime/types.ts';
import type { Endpoint } from '../upstream/balancer.ts';
import type { BodySink, DispatchRequest, ProxiedResponse } from '../upstream/dispatch.ts';
import type { ProxyJob } from '../upstream/proxy.ts';
import type { UpstreamRuntime } from '../upstream/upstream.ts';
import { BodyLimiter, readBounded } from './body.ts';
import type { HttpRequestMessage } from './channels.ts';
import type { RequestContext } from './context.ts';
import type { Downstream, DownstreamEvents, PipelineRequest } from './downstream.ts';
import { downstreamHeaders, upstreamHeaders } from './forward.ts';
import { grpcStatusText, grpcToHttpStatus, isGrpcRequest } from './grpc.ts';
import type { HttpPipeline } from './pipeline.ts';

const EMPTY = Buffer.alloc(0);

export class Transaction implements DownstreamEvents, BodySink, ProxyJob, HttpRequestMessage {
  readonly pipeline: HttpPipeline;
  readonly rt: HttpRuntime;
  readonly req: PipelineRequest;
  /** Null only for the side-effect-free probe of upgradeWanted(). */
  readonly down: Downstream | null;
  ctx!: RequestContext;
  route: HttpRoute | null = null;
  chain: PluginChain | null = null;
  /** The client went away (or the exchange completed). */
  closed = false;
  done = false;
  bytes = 0;
  filtering = false;
  result: ProxiedResponse | null = null;
  /** The client sent gRPC or gRPC-Web (decided before plugins could change the content type). */
  clientGrpc = false;

  // ProxyJob
  upstream!: UpstreamRuntime;
  pickCtx: { vars: RequestContext['vars']; tried: Set<string> | null } = { vars: null!, tried: null };
  connectTimeoutMs = 0;
  sendTimeoutMs = 0;
  readTimeoutMs = 0;
  http2: boolean | undefined = undefined;
  current: { abort(reason?: Error): void } | null = null;
  cancelled = false;
  failedStatuses = '';
  upstreamLatencyMs = 0;
  grpcPendingEndpoint: Endpoint | null = null;
  /** The proxied answer is gRPC (its content type): only then are grpc-status head and trailer recorded. */
  grpcAnswer = false;
  /** The request body for upstream attempts, built once after before_proxy (a retry resends it unconsumed). */
  private body: Readable | Buffer | null = null;

  constructor(pipeline: HttpPipeline, rt: HttpRuntime, req: PipelineRequest, down: Downstream | null) {
    this.pipeline = pipeline;
    this.rt = rt;
    this.req = req;
    this.down = down;
  }

  /** The whole request body for plugins that read it (bounded by client_max_body_size). */
  read(): Promise<Buffer> {
    const src = this.req.body;
    return src === null ? Promise.resolve(EMPTY) : readBounded(src, this.pipeline.opts.clientMaxBodySize);
  }

  setUpstream(upstream: UpstreamRuntime, timeout: TimeoutConf): void {
    this.upstream = upstream;
    this.pickCtx.vars = this.ctx.vars;
    this.connectTimeoutMs = timeout.connect * 1000;
    this.sendTimeoutMs = timeout.send * 1000;
    this.readTimeoutMs = timeout.read * 1000;
    const p = this.ctx.upstreamProtocol;
    this.http2 = p === undefined ? undefined : p === 'h2';
  }

  // HttpRequestMessage (diagnostics channels): computed only when a subscriber reads them ----------------------

  get method(): string {
    return this.ctx.request.method;
  }

  get path(): string {
    return this.ctx.request.path;
  }

  get routeId(): string | null {
    return this.route === null ? null : this.route.id;
  }

  get serviceId(): string | null {
    return this.route?.serviceId ?? null;
  }

  get upstreamNode(): string | null {
    return this.ctx.upstreamAddr ?? null;
  }

  get status(): number {
    return this.ctx.response.status;
  }

  get latencyMs(): number {
    return Number(process.hrtime.bigint() - this.ctx.startNs) / 1e6;
  }

  // ProxyJob ---------------------------------------------------------------------------------------------------

  attempting(ep: Endpoint): void {
    const ctx = this.ctx;
    ctx.upstreamAddr = ep.key;
    ctx.balancerIp = ep.host;
    ctx.balancerPort = ep.port;
  }

  /** The upstream request for one endpoint; Host per pass_host comes from the upstream (its one home). */
  requestFor(ep: Endpoint): DispatchRequest {
    // hot path
    const ctx = this.ctx;
    const rq = ctx.request;
    const headers = this.upstreamRequestHeaders(this.upstream.isGrpc || this.http2 === true, false);
    headers.host = this.upstream.hostHeader(ep, clientHostHeader(ctx));
    ctx.upstreamHost = headers.host;
    ctx.upstreamScheme = this.upstream.scheme;
    let body = this.body;
    if (rq.body !== null) {
      body = rq.body;
      headers['content-length'] = String(rq.body.length);
      delete headers['transfer-encoding'];
    }
    return { method: rq.method, path: upstreamTarget(ctx), headers, body };
  }

  /** The client's headers as the upstream gets them (hop-by-hop removed, X-Forwarded-* per trusted_addresses). */
  upstreamRequestHeaders(keepTeTrailers: boolean, upgrade: boolean): Record<string, string | string[]> {
    // hot path
    const ctx = this.ctx;
    const rq = ctx.request;
    return upstreamHeaders(rq.headers, {
      host: rq.host,
      peerAddr: ctx.peerAddr,
      remoteAddr: rq.remoteAddr,
      scheme: rq.scheme,
      serverPort: rq.serverPort,
      trusted: this.pipeline.trusted.trusts(ctx.peerAddr),
      keepTeTrailers,
      upgrade,
    });
  }

  /** Builds the streamed request body once: the size limit and request_body_filter plugins applied. */
  prepareBody(): void {
    const src = this.req.body;
    if (src === null || this.ctx.request.body !== null) return;
    let s: Readable = src;
    const limit = this.pipeline.opts.clientMaxBodySize;
    if (limit > 0) s = s.pipe(new BodyLimiter(limit));
    const g = this.rt.global;
    const chain = this.chain;
    if ((chain !== null && chain.request_body_filter.length > 0) || (g !== null && g.request_body_filter.length > 0)) {
      s = Readable.from(filterRequestBody(s, this));
    }
    this.body = s;
  }

  // Response ---------------------------------------------------------------------------------------------------

  /** Sends a proxied response: header_filter, then the head and the streamed body. */
  respond(result: ProxiedResponse): void {
    const ctx = this.ctx;
    const global = this.rt.global;
    const chain = this.chain;
    const opts = this.pipeline.opts;
    ctx.upstreamStatus = result.status;
    const resp = ctx.response;
    resp.status = result.status;
    downstreamHeaders(result.headers, resp.headers);
    // A gRPC answer's status: its trailers-only head here, its trailer in end().
    if (isGrpcRequest(result.headers)) {
      this.grpcAnswer = true;
      const gs = resp.headers['grpc-status'];
      if (gs !== undefined) ctx.grpcStatus = grpcStatusText(typeof gs === 'string' ? gs : gs[0]!);
    }
    resp.headers['server'] = this.pipeline.serverHeader;
    if (result.status >= 500 || opts.showUpstreamStatus) {
      const failed = this.failedStatuses;
      resp.headers['x-apisix-upstream-status'] = failed === '' ? String(result.status) : `${failed}, ${result.status}`;
    }
    runHeaderFilter(global, chain, ctx);
    this.filtering = (chain !== null && chain.body_filter.length > 0) || (global !== null && global.body_filter.length > 0);
    if (this.filtering) delete resp.headers['content-length'];
    const down = this.down!;
    const replacement = resp.replacement;
    if (replacement !== null) {
      result.discard();
      // The trailer is never read: no status to judge the node by.
      this.grpcPendingEndpoint = null;
      delete resp.headers['content-encoding'];
      resp.headers['content-length'] = String(replacement.length);
      down.head(resp.status, resp.headers);
      down.data(replacement);
      down.end(null);
      this.bytes = replacement.length;
      this.finish();
      return;
    }
    down.head(resp.status, resp.headers);
    this.result = result;
    result.pipeTo(this);
    down.flush?.();
  }

  write(chunk: Buffer): boolean {
    // hot path
    if (this.done) return true;
    let out: Buffer | null = chunk;
    if (this.filtering) {
      out = runBodyFilter(this.rt.global, this.chain, this.ctx, chunk, false);
      if (out === null || out.length === 0) return true;
    }
    this.bytes += out.length;
    return this.down!.data(out);
  }

  end(trailers: Record<string, string>): void {
    if (this.done) return;
    const down = this.down!;
    let t: Record<string, string> | null = null;
    for (const _ in trailers) {
      t = trailers;
      break;
    }
    this.ctx.response.trailers = t;
    if (this.grpcAnswer) {
      // Read before body_filter: grpc-web turns the trailers into its trailer frame and clears them.
      const gs = t === null ? undefined : t['grpc-status'];
      if (gs !== undefined) this.ctx.grpcStatus = grpcStatusText(gs);
      const ep = this.grpcPendingEndpoint;
      if (ep !== null) {
        this.grpcPendingEndpoint = null;
        // Passive health of a gRPC answer (Envoy's mapping); a stream that ends without grpc-status is UNKNOWN.
        this.pipeline.opts.outcomes?.status(this.upstream, ep, grpcToHttpStatus(gs));
      }
    }
    if (this.filtering) {
      const out = runBodyFilter(this.rt.global, this.chain, this.ctx, EMPTY, true);
      if (out !== null && out.length > 0) {
        this.bytes += out.length;
        down.data(out);
      }
    }
    down.end(this.ctx.response.trailers);
    this.finish();
  }

  error(err: Error): void {
    if (this.done) return;
    this.pipeline.logger.warn({ err: err.message, route: this.ctx.routeId }, 'upstream body aborted');
    const ep = this.grpcPendingEndpoint;
    if (ep !== null) {
      this.grpcPendingEndpoint = null;
      // A gRPC answer broken off before its status is a reset of the node, unless our client caused it.
      if (!this.cancelled) this.pipeline.opts.outcomes?.failure(this.upstream, ep, 'reset');
    }
    this.down!.abort();
    this.finish();
  }

  abortDownstream(): void {
    this.down?.abort();
    this.finish();
  }

  // DownstreamEvents --------------------------------------------------------------------------------------------

  onDrain(): void {
    this.result?.resume();
  }

  /** The client went away: cancel whatever runs upstream (within the event-loop turn), log once. */
  onClose(): void {
    if (this.done) return;
    this.closed = true;
    this.cancelled = true;
    this.ctx.clientClosed();
    if (!this.down!.headSent) this.ctx.response.status = 499;
    const result = this.result;
    if (result !== null) {
      result.abort();
      this.finish();
      return;
    }
    // Before the head: the attempt (if any) fails fast; the pipeline sees `closed` and logs.
    this.current?.abort(new Error('client closed the connection'));
  }

  /** Ends the exchange: the log phase and the access log, exactly once. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    this.pipeline.log(this);
  }
}

/** The Host header the client sent (pass_host: pass forwards it as is). */
function clientHostHeader(ctx: RequestContext): string {
  const h = ctx.request.headers.host ?? ctx.request.headers[':authority'];
  return (Array.isArray(h) ? h[0] : h) ?? ctx.request.host;
}

/** The forwarded path (see src/router/uri.ts) unless a plugin rewrote it, plus the query. */
function upstreamTarget(ctx: RequestContext): string {
  const rq = ctx.request;
  // Plugins that rewrite the path (proxy-rewrite) store it already encoded for the upstream.
  const path = rq.path === ctx.originalPath ? ctx.rawPath : rq.path;
  return rq.query === '' ? path : `${path}?${rq.query}`;
}

/** request_body_filter steps over the streamed body (global steps first, as every phase). */
async function* filterRequestBody(src: Readable, tx: Transaction): AsyncGenerator<Buffer> {
  const g = tx.rt.global;
  const chain = tx.chain;
  const steps = [...(g?.request_body_filter ?? []), ...(chain?.request_body_filter ?? [])];
  const apply = (chunk: Buffer, eof: boolean): Buffer | null => {
    let cur: Buffer | null = chunk;
    for (const step of steps) {
      const out: Buffer | null = step.instance.request_body_filter!(tx.ctx, cur ?? EMPTY, eof);
      cur = out;
      if (cur === null && !eof) return null;
    }
    return cur;
  };
  for await (const chunk of src) {
    const out = apply(chunk as Buffer, false);
    if (out !== null && out.length > 0) yield out;
  }
  const last = apply(EMPTY, true);
  if (last !== null && last.length > 0) yield last;
}

