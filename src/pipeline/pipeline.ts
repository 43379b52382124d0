// The one HTTP request pipeline for every HTTP-family listener (HTTP/1.1, h2c, h2 over TLS, HTTP/3, WebSocket
// upgrades): normalize -> match -> rewrite -> access -> balance -> before_proxy -> terminal step (dispatch to
// the upstream through the retry/outcome layers, or tunnel an upgraded connection) -> header_filter ->
// body_filter (streaming, sees trailers) -> log. Adapters (protocols/*) turn their protocol's request into a
// PipelineRequest + Downstream; the pipeline drives every phase. Per-request state lives in one Transaction.
import { APISIX_COMPAT_VERSION } from '../apisix-compat.ts';
import { catalogReply, type ErrorCode } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { PluginChain } from '../plugin/chain.ts';
import type { PluginResponse } from '../plugin/plugin.ts';
import { runBodyFilter, runHeaderFilter, runLog, runPhase, type PhaseOutcome } from '../plugin/runner.ts';
import type { MatchInput, RouteMatch } from '../router/router.ts';
import { normalizeHost, normalizeRequestPath, type NormalizeOptions } from '../router/uri.ts';
import type { HttpRoute, HttpRuntime } from '../runtime/types.ts';
import { compose, outcomesLayer, poolAttempt, retryLayer, failureStatus, type Attempt, type UpstreamOutcomes } from '../upstream/proxy.ts';
import type { AccessLog } from './access-log.ts';
import { absoluteForm } from './authority.ts';
import { requestEnd, requestStart, upstreamErrorLayer } from './channels.ts';
import { RequestContext } from './context.ts';
import type { Downstream, PipelineRequest } from './downstream.ts';
import { TrustedProxies } from './forward.ts';
import { grpcLocalHeaders, grpcStatusText, isGrpcRequest, isGrpcWebRequest } from './grpc.ts';
import { encodeBody } from './respond.ts';
import { Transaction } from './transaction.ts';
import { StreamedAnswer } from './streamed.ts';
import { runTunnel } from './tunnel.ts';

export interface PipelineOptions {
  getRuntime(): HttpRuntime;
  trustedAddresses: readonly string[];
  showUpstreamStatus: boolean;
  /** Bytes; 0 = unlimited. */
  clientMaxBodySize: number;
  serverTokens: boolean;
  /** apisix.delete_uri_tail_slash / normalize_uri_like_servlet. */
  uri?: NormalizeOptions;
  logger: Logger;
  accessLog: AccessLog | null;
  /** Passive health: outcomes of upstream attempts. */
  outcomes?: UpstreamOutcomes;
}

const DEFAULT_TIMEOUT = { connect: 60, send: 60, read: 60 };
const NO_URI_OPTIONS: NormalizeOptions = { deleteTailSlash: false, servlet: false };
const EMPTY = Buffer.alloc(0);

export class HttpPipeline {
  readonly opts: PipelineOptions;
  readonly trusted: TrustedProxies;
  readonly logger: Logger;
  /** retries( outcomes( upstream:error diagnostics( pool dispatch ) ) ), composed once. */
  readonly attempt: Attempt;
  private readonly uriOptions: NormalizeOptions;
  /** nginx replaces the upstream's Server header: `APISIX/<version>`, or `APISIX` without server tokens. */
  readonly serverHeader: string;

  constructor(opts: PipelineOptions) {
    this.opts = opts;
    this.logger = opts.logger;
    this.trusted = new TrustedProxies(opts.trustedAddresses);
    this.uriOptions = opts.uri ?? NO_URI_OPTIONS;
    this.serverHeader = opts.serverTokens ? `APISIX/${APISIX_COMPAT_VERSION}` : 'APISIX';
    this.attempt = compose(poolAttempt, retryLayer(opts.logger), outcomesLayer(opts.outcomes), upstreamErrorLayer);
  }

  /** Entry point of every adapter. Never throws; the answer goes out through `down`. */
  handle(req: PipelineRequest, down: Downstream): void {
    const rt = this.opts.getRuntime();
    const tx = new Transaction(this, rt, req, down);
    down.listen(tx);
    const bad = this.prepare(tx);
    // After prepare(): subscribers read the method and normalized path from the context it builds.
    if (requestStart.hasSubscribers) requestStart.publish(tx);
    if (bad !== null) {
      this.local(tx, null, catalogReply(bad));
      return;
    }
    void this.run(tx);
  }

  /**
   * HTTP/1.1 adapters ask before taking an Upgrade request off the normal request path: true when the matched
   * route tunnels WebSockets. APISIX proxies an upgrade on any other route as a plain request.
   */
  upgradeWanted(req: PipelineRequest): boolean {
    const rt = this.opts.getRuntime();
    const tx = new Transaction(this, rt, req, null);
    if (this.prepare(tx) !== null) return true; // answered as a bad request on the upgrade path
    const m = rt.router.match(this.matchInput(tx.ctx));
    return m === null || m.payload.enableWebsocket;
  }

  /** Builds the context (URI and host normalized); a catalog code when the request must get 400. */
  private prepare(tx: Transaction): ErrorCode | null {
    const req = tx.req;
    let target = req.target;
    // Absolute-form targets (RFC 9112 3.2.2) are accepted as nginx does: the authority replaces Host.
    // The adapters' TLS checks take theirs from the same absoluteForm().
    let authority = req.authority;
    const abs = absoluteForm(target);
    if (abs !== null) {
      authority = abs.authority;
      target = abs.target;
      req.headers.host = authority;
    }
    // h2/h3 carry the authority as :authority only; nginx derives Host from it, so $http_host and plugins
    // reading the Host header see it on every protocol.
    if (req.headers.host === undefined && typeof authority === 'string' && authority !== '') req.headers.host = authority;
    const q = target.indexOf('?');
    const norm = normalizeRequestPath(q < 0 ? target : target.slice(0, q), this.uriOptions);
    const host = authority === null ? null : normalizeHost(authority);
    tx.ctx = new RequestContext({
      method: req.method,
      path: norm.ok ? norm.path : '/',
      forwardPath: norm.ok ? norm.forward : '/',
      query: q < 0 ? '' : target.slice(q + 1),
      rawUri: req.target,
      headers: req.headers,
      remoteAddr: req.remoteAddr,
      remotePort: req.remotePort,
      serverAddr: req.serverAddr,
      serverPort: req.serverPort,
      scheme: req.tls === null ? 'http' : 'https',
      httpVersion: req.httpVersion,
      host: host ?? '',
      tls: req.tls,
    });
    tx.ctx.request.bodySource = tx;
    // Decided before plugins run: a plugin that turns plain HTTP into gRPC (grpc-transcode) must not make the
    // gateway's own errors gRPC-shaped for that client; gRPC-Web translated to gRPC (grpc-web) keeps them.
    tx.clientGrpc = isGrpcRequest(req.headers) || isGrpcWebRequest(req.headers);
    if (!norm.ok) return 'SWY_ERR_BAD_REQUEST_URI';
    if (host === null) return 'SWY_ERR_BAD_REQUEST_HOST';
    const t = req.tls;
    if (t !== null && t.mtlsRequired && t.clientVerify !== 'SUCCESS' && (t.skipMtls === null || !t.skipMtls(norm.path))) {
      return 'SWY_ERR_MTLS_REQUIRED';
    }
    return null;
  }

  matchInput(ctx: RequestContext): MatchInput {
    const input: MatchInput = {
      method: ctx.request.method,
      host: ctx.request.host,
      path: ctx.request.path,
      remoteAddr: ctx.request.remoteAddr,
      vars: ctx.vars,
      params: null,
    };
    ctx.matchInput = input;
    return input;
  }

  /**
   * Never rejects: a failure answers 500. One async frame for the whole request: a phase is awaited only when a
   * plugin step returned a promise (runPhase stays synchronous otherwise, and `await` on a plain value would
   * still cost a microtask), and the upstream attempt is awaited here rather than through a nested async call.
   */
  private async run(tx: Transaction): Promise<void> {
    try {
      // hot path
      const { ctx, rt } = tx;
      const limit = this.opts.clientMaxBodySize;
      if (limit > 0) {
        const cl = Number(tx.req.headers['content-length'] ?? 0);
        if (cl > limit) return this.local(tx, null, catalogReply('SWY_ERR_BODY_TOO_LARGE'));
      }
      const match: RouteMatch<HttpRoute> | null = rt.router.match(this.matchInput(ctx));
      let r: PhaseOutcome;
      if (match === null) {
        // APISIX runs global rules even when no route matches.
        if (rt.global !== null) {
          r = runPhase(rt.global, null, 'rewrite', ctx);
          if (r instanceof Promise) r = await r;
          if (!r) {
            r = runPhase(rt.global, null, 'access', ctx);
            if (r instanceof Promise) r = await r;
          }
          if (r) return this.local(tx, null, r);
        }
        return this.local(tx, null, catalogReply('SWY_ERR_ROUTE_NOT_FOUND'));
      }
      const route = match.payload;
      ctx.params = match.params;
      ctx.routeId = route.id;
      ctx.matchedUri = match.uri;
      ctx.matchedHost = match.host ?? '';
      ctx.routeName = route.name;
      ctx.serviceId = route.serviceId;
      ctx.serviceName = route.serviceName;
      tx.route = route;
      // APISIX logs an unresolved reference at error level and exits without a body: a missing plugin_config or
      // service before any plugin runs, a missing upstream_id only at the upstream step (handle_upstream, after
      // rewrite and access: an unauthenticated client gets the auth plugin's 401 first).
      if (route.broken !== null && route.broken.code !== 'SWY_ERR_UPSTREAM_NOT_FOUND') return this.broken(tx, route, null);

      let chain: PluginChain = route.chain;
      tx.chain = chain;
      r = runPhase(rt.global, chain, 'rewrite', ctx);
      if (r instanceof Promise) r = await r;
      if (r) return this.local(tx, chain, r);
      if (ctx.consumer !== null) {
        const merged = rt.consumerChain(route, ctx.consumer);
        if (merged !== chain) {
          chain = merged;
          tx.chain = chain;
          r = runPhase(null, chain, 'rewrite', ctx, true);
          if (r instanceof Promise) r = await r;
          if (r) return this.local(tx, chain, r);
        }
      }
      r = runPhase(rt.global, chain, 'access', ctx);
      if (r instanceof Promise) r = await r;
      if (r) return this.local(tx, chain, r);

      const upstream = ctx.upstreamOverride !== null ? rt.resolveUpstream(ctx.upstreamOverride) : route.upstream;
      if (upstream === null) {
        // Plugins that call their backend themselves (ai-proxy; APISIX's bypass_nginx_upstream) answer from
        // before_proxy, after every access step (rate limits included) ran.
        r = runPhase(rt.global, chain, 'before_proxy', ctx);
        if (r instanceof Promise) r = await r;
        if (r) return this.local(tx, chain, r);
        // A plugin's upstream (traffic-split) replaces the route's, missing or not; without one, the missing
        // upstream_id answers.
        const override = ctx.upstreamOverride;
        if (typeof override === 'string') {
          // An upstream_id that names no upstream: APISIX's handle_upstream answers 502 for a plugin's as for a
          // route's ("failed to find upstream by id").
          this.logger.error({ route: route.id, upstream_id: override }, 'failed to find upstream by id');
          return this.local(tx, chain, catalogReply('SWY_ERR_UPSTREAM_NOT_FOUND'));
        }
        if (route.broken !== null && override === null) return this.broken(tx, route, chain);
        return this.local(tx, chain, catalogReply('SWY_ERR_MISSING_UPSTREAM'));
      }
      const timeout = route.timeout ?? upstream.timeout ?? DEFAULT_TIMEOUT;
      tx.setUpstream(upstream, timeout);
      if (tx.req.upgrade && route.enableWebsocket) {
        await runTunnel(this, tx, upstream);
        return;
      }

      // The dispatch terminal: first pick, before_proxy, then the composed attempt layers.
      const pick = upstream.pick(tx.pickCtx);
      if (!pick.ok) return this.local(tx, chain, catalogReply('SWY_ERR_NO_UPSTREAM_NODE'));
      tx.attempting(pick.endpoint);
      r = runPhase(rt.global, chain, 'before_proxy', ctx);
      if (r instanceof Promise) r = await r;
      // before_proxy steps may not switch chains; tx.chain is what header_filter and log use from here on.
      if (r) return this.local(tx, tx.chain, r);
      if (tx.closed) return tx.finish();
      tx.prepareBody();
      const result = await this.attempt(tx, pick.endpoint);
      if (tx.closed) {
        // The client left while the upstream was answering: nothing to send; nginx logs 499.
        if (result.ok) result.abort();
        return tx.finish();
      }
      if (result.ok) {
        ctx.upstreamLatencyMs = tx.upstreamLatencyMs;
        return tx.respond(result);
      }
      const status = failureStatus(result);
      ctx.upstreamStatus = status;
      // APISIX shows nginx's $upstream_status for a failed proxy too ("502, 502, 502" after retries).
      return this.local(tx, tx.chain, {
        ...catalogReply(status === 504 ? 'SWY_ERR_UPSTREAM_TIMEOUT' : 'SWY_ERR_UPSTREAM_UNAVAILABLE'),
        headers: { 'x-apisix-upstream-status': tx.failedStatuses },
      });
    } catch (err) {
      this.logger.error({ err, route: tx.ctx.routeId }, 'request failed');
      if (!tx.down!.headSent) this.local(tx, null, catalogReply('SWY_ERR_INTERNAL'));
      else tx.abortDownstream();
    }
  }

  /**
   * A route with a dangling reference, logged as APISIX logs it. `chain`: the plugins whose filters and log see
   * the answer (null before any plugin ran).
   */
  private broken(tx: Transaction, route: HttpRoute, chain: PluginChain | null): void {
    const b = route.broken!;
    this.logger.error({ route: route.id, detail: b.detail }, 'route has a dangling reference');
    this.local(tx, chain, catalogReply(b.code));
  }

  /** Answers locally after running header_filter/body_filter/log as for a proxied response. */
  local(tx: Transaction, chain: PluginChain | null, r: PluginResponse): void {
    if (r.stream !== undefined) return this.localStream(tx, chain, r);
    const ctx = tx.ctx;
    const global = tx.rt.global;
    const encoded = encodeBody(r);
    const resp = ctx.response;
    resp.status = r.status;
    resp.headers['content-type'] = encoded.contentType;
    resp.headers['server'] = this.serverHeader;
    if (r.headers !== undefined) for (const k in r.headers) resp.headers[k.toLowerCase()] = r.headers[k];
    // gRPC clients get a trailers-only answer (HTTP 200, grpc-status); status stays the HTTP one for the log.
    const grpc = grpcLocalHeaders(tx.clientGrpc && isGrpcRequest(ctx.request.headers), r);
    if (grpc !== null) {
      Object.assign(resp.headers, grpc);
      ctx.grpcStatus = grpcStatusText(grpc['grpc-status']);
    }
    let body = grpc === null ? encoded.body : EMPTY;
    if (chain !== null || global !== null) {
      runHeaderFilter(global, chain, ctx);
      if (resp.replacement !== null) body = resp.replacement;
      else if ((chain !== null && chain.body_filter.length > 0) || (global !== null && global.body_filter.length > 0)) {
        body = runBodyFilter(global, chain, ctx, body, true) ?? Buffer.alloc(0);
      }
    }
    tx.chain = chain;
    const down = tx.down!;
    if (!tx.closed) {
      if (down.headSent) down.abort();
      else {
        resp.headers['content-length'] = String(body.length);
        down.head(grpc === null ? resp.status : 200, resp.headers);
        if (body.length > 0) down.data(body);
        down.end(null);
        tx.bytes = body.length;
      }
    }
    tx.finish();
  }

  /** A streamed local answer: the proxied-response path (header_filter, body_filter, backpressure, cancel). */
  private localStream(tx: Transaction, chain: PluginChain | null, r: PluginResponse): void {
    tx.chain = chain;
    const headers: Record<string, string> = {};
    headers['server'] = this.serverHeader;
    if (r.headers !== undefined) for (const k in r.headers) headers[k.toLowerCase()] = r.headers[k]!;
    const answer = new StreamedAnswer(r, headers);
    if (tx.closed) {
      answer.abort();
      return tx.finish();
    }
    tx.respond(answer);
  }

  /** The log phase and the access log line, once per exchange. */
  log(tx: Transaction): void {
    const ctx = tx.ctx;
    ctx.bytesSent = tx.bytes;
    runLog(tx.rt.global, tx.chain, ctx);
    this.opts.accessLog?.write(ctx, tx.bytes, tx.chain);
    if (requestEnd.hasSubscribers) requestEnd.publish(tx);
  }
}
