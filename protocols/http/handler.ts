// The HTTP request flow: match -> rewrite -> access -> balance -> before_proxy -> dispatch (with retries)
// -> header_filter -> body_filter (streaming) -> log. One instance per listener; per-request state lives in
// RequestContext.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Readable } from 'node:stream';
import { ERRORS } from '../../src/errors.ts';
import type { Logger } from '../../src/observability/logger.ts';
import type { PluginChain } from '../../src/plugin/chain.ts';
import type { PluginResponse } from '../../src/plugin/plugin.ts';
import { runBodyFilter, runHeaderFilter, runLog, runPhase } from '../../src/plugin/runner.ts';
import type { MatchInput } from '../../src/router/router.ts';
import type { HttpRoute, HttpRuntime } from '../../src/runtime/types.ts';
import { dispatch, type DispatchRequest, type DispatchResult, type ProxiedResponse } from '../../src/upstream/dispatch.ts';
import type { UpstreamRuntime } from '../../src/upstream/upstream.ts';
import type { Endpoint } from '../../src/upstream/balancer.ts';
import type { AccessLog } from './access-log.ts';
import { RequestContext } from './context.ts';
import { downstreamHeaders, hostWithPort, TrustedProxies, upstreamHeaders } from './forward.ts';
import { encodeBody, sendLocal, type AnyResponse } from './respond.ts';
import { BodyLimiter, readBounded } from './body.ts';
import { streamResponse } from './response-stream.ts';
import { normalizeHost, normalizeRequestPath, type NormalizeOptions } from '../../src/router/uri.ts';

const ABSOLUTE_FORM = /^https?:\/\//i;

export type AnyRequest = IncomingMessage | Http2ServerRequest;

export interface HandlerOptions {
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

export interface UpstreamOutcomes {
  failure(upstream: UpstreamRuntime, endpoint: Endpoint, kind: string): void;
  status(upstream: UpstreamRuntime, endpoint: Endpoint, status: number): void;
}

const NOT_FOUND = Buffer.from(JSON.stringify({ error_msg: ERRORS.SWY_ERR_ROUTE_NOT_FOUND.message }));
const DEFAULT_TIMEOUT = { connect: 60, send: 60, read: 60 };

/**
 * The request's host, normalized in one place (src/router/uri.ts); null when the request must get 400: an
 * HTTP/1.1 request without Host or with several Host headers (RFC 9112 3.2), or a malformed host.
 */
function hostOf(req: AnyRequest): string | null {
  const authority = req.headers[':authority'] as string | undefined;
  if (authority !== undefined) return normalizeHost(authority);
  if (req.httpVersionMajor === 1) {
    let seen = 0;
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i]!;
      if (k.length === 4 && k.toLowerCase() === 'host') seen++;
    }
    if (seen > 1 || (seen === 0 && req.httpVersionMinor >= 1)) return null;
  }
  return normalizeHost(req.headers.host ?? '');
}

export class HttpHandler {
  readonly opts: HandlerOptions;
  readonly trusted: TrustedProxies;
  private readonly uriOptions: NormalizeOptions;

  constructor(opts: HandlerOptions) {
    this.opts = opts;
    this.uriOptions = opts.uri ?? { deleteTailSlash: false, servlet: false };
    this.trusted = new TrustedProxies(opts.trustedAddresses);
  }

  /** Builds the context; null when the request line is unusable (already answered 400). */
  createContext(req: AnyRequest, res: AnyResponse | null, isTls: boolean): RequestContext | null {
    let url = req.url ?? '/';
    // Absolute-form targets (RFC 9112 3.2.2, sent to proxies) are accepted as nginx does: the authority
    // replaces Host.
    let absHost: string | null = null;
    if (url.charCodeAt(0) !== 47 && ABSOLUTE_FORM.test(url)) {
      const start = url.indexOf('//') + 2;
      const slash = url.indexOf('/', start);
      absHost = slash < 0 ? url.slice(start) : url.slice(start, slash);
      url = slash < 0 ? '/' : url.slice(slash);
    }
    const q = url.indexOf('?');
    const norm = normalizeRequestPath(q < 0 ? url : url.slice(0, q), this.uriOptions);
    const query = q < 0 ? '' : url.slice(q + 1);
    const sock = req.socket;
    const host = absHost !== null ? normalizeHost(absHost) : hostOf(req);
    if (!norm.ok || host === null) {
      if (res !== null) {
        const msg = norm.ok ? 'bad request host' : 'bad request uri';
        sendLocal(res, 400, Buffer.from(`${JSON.stringify({ error_msg: msg })}\n`), { 'content-type': 'application/json' });
      }
      return null;
    }
    if (absHost !== null) req.headers.host = absHost;
    return new RequestContext({
      method: req.method ?? 'GET',
      path: norm.path,
      forwardPath: norm.forward,
      query,
      rawUri: req.url ?? '/',
      // Owned by this request: plugins edit it in place (no copy).
      headers: req.headers,
      remoteAddr: normalizeAddr(sock?.remoteAddress ?? ''),
      remotePort: sock?.remotePort ?? 0,
      serverAddr: normalizeAddr(sock?.localAddress ?? ''),
      serverPort: sock?.localPort ?? 0,
      scheme: isTls ? 'https' : 'http',
      httpVersion: req.httpVersion,
      host,
    });
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

  /** Entry point for every non-upgrade request. Never throws. */
  handle(req: AnyRequest, res: AnyResponse, isTls: boolean): void {
    const ctx = this.createContext(req, res, isTls);
    if (ctx === null) return;
    void this.run(ctx, req, res);
  }

  /** Never rejects: a failure answers 500 (a try/catch here instead of a per-request .catch closure). */
  private async run(ctx: RequestContext, req: AnyRequest, res: AnyResponse): Promise<void> {
    try {
      await this.flow(ctx, req, res);
    } catch (err) {
      this.opts.logger.error({ err, route: ctx.routeId }, 'request failed');
      this.fail(ctx, res, 500, ERRORS.SWY_ERR_PLUGIN_FAILED.message);
    }
  }

  private async flow(ctx: RequestContext, req: AnyRequest, res: AnyResponse): Promise<void> {
    const rt = this.opts.getRuntime();
    const limit = this.opts.clientMaxBodySize;
    if (limit > 0) {
      const cl = Number(req.headers['content-length'] ?? 0);
      if (cl > limit) return this.finishLocal(ctx, rt.global, null, res, { status: 413 });
    }
    ctx.request.bodySource = new StreamedBody(req, limit);

    const input = this.matchInput(ctx);
    const match = rt.router.match(input);
    if (match === null) {
      // APISIX runs global rules even when no route matches.
      if (rt.global !== null) {
        const r = (await runPhase(rt.global, null, 'rewrite', ctx)) ?? (await runPhase(rt.global, null, 'access', ctx));
        if (r) return this.finishLocal(ctx, rt.global, null, res, r);
      }
      return this.finishLocal(ctx, rt.global, null, res, { status: 404, body: NOT_FOUND, headers: { 'content-type': 'application/json' } });
    }
    const route = match.payload;
    ctx.params = match.params;
    ctx.routeId = route.id;
    ctx.routeName = route.name;
    ctx.serviceId = route.serviceId;
    ctx.serviceName = route.serviceName;
    if (route.broken !== null) {
      return this.finishLocal(ctx, rt.global, null, res, { status: route.broken.status, body: { error_msg: route.broken.message } });
    }

    let chain: PluginChain = route.chain;
    let r = await runPhase(rt.global, chain, 'rewrite', ctx);
    if (r) return this.finishLocal(ctx, rt.global, chain, res, r);
    if (ctx.consumer !== null) {
      const merged = rt.consumerChain(route, ctx.consumer);
      if (merged !== chain) {
        chain = merged;
        r = await runPhase(null, chain, 'rewrite', ctx, true);
        if (r) return this.finishLocal(ctx, rt.global, chain, res, r);
      }
    }
    r = await runPhase(rt.global, chain, 'access', ctx);
    if (r) return this.finishLocal(ctx, rt.global, chain, res, r);

    const upstream = ctx.upstreamOverride !== null ? rt.resolveUpstream(ctx.upstreamOverride) : route.upstream;
    if (upstream === null) {
      return this.finishLocal(ctx, rt.global, chain, res, {
        status: 503,
        body: { error_msg: 'missing upstream configuration in Route or Service' },
      });
    }
    await this.proxy(ctx, rt, route, chain, upstream, req, res);
  }

  private async proxy(
    ctx: RequestContext,
    rt: HttpRuntime,
    route: HttpRoute,
    chain: PluginChain,
    upstream: UpstreamRuntime,
    req: AnyRequest,
    res: AnyResponse,
  ): Promise<void> {
    const timeout = route.timeout ?? upstream.timeout ?? DEFAULT_TIMEOUT;
    const rq = ctx.request;
    const retries = upstream.retries;
    const retryDeadline = upstream.retryTimeoutMs > 0 ? Date.now() + upstream.retryTimeoutMs : 0;
    // `tried` is only allocated once an attempt failed.
    const pickCtx: { vars: RequestContext['vars']; tried: Set<string> | null } = { vars: ctx.vars, tried: null };
    // The client body stream, built once after before_proxy: a retry after a connect failure resends the
    // same (not yet consumed) stream.
    let streamed: Readable | null | undefined;
    let lastFailure: DispatchResult | null = null;
    let ranBeforeProxy = false;
    /** nginx's $upstream_status over the failed attempts so far: "502, 504". */
    let attempts = '';

    for (let attempt = 0; ; attempt++) {
      const pick = upstream.pick(pickCtx);
      if (!pick.ok) {
        if (lastFailure !== null) break;
        return this.finishLocal(ctx, rt.global, chain, res, { status: 502 });
      }
      const ep = pick.endpoint;
      ctx.upstreamAddr = ep.key;
      ctx.balancerIp = ep.host;
      ctx.balancerPort = ep.port;
      if (!ranBeforeProxy) {
        ranBeforeProxy = true;
        const r = await runPhase(rt.global, chain, 'before_proxy', ctx);
        if (r) return this.finishLocal(ctx, rt.global, chain, res, r);
      }
      const host = this.upstreamHost(ctx, upstream, ep.domain, ep.port);
      const headers = upstreamHeaders(rq.headers, {
        host: rq.host,
        peerAddr: ctx.peerAddr,
        remoteAddr: rq.remoteAddr,
        scheme: rq.scheme,
        serverPort: rq.serverPort,
        trusted: this.trusted.trusts(ctx.peerAddr),
        keepTeTrailers: upstream.isGrpc,
        upgrade: false,
      });
      headers.host = host;
      if (streamed === undefined) streamed = rq.body === null && hasBody(req) ? this.clientBody(req) : null;
      let body: Readable | Buffer | null = streamed;
      if (rq.body !== null) {
        body = rq.body;
        headers['content-length'] = String(rq.body.length);
        delete headers['transfer-encoding'];
      }
      const dreq: DispatchRequest = {
        method: rq.method,
        path: upstreamPath(ctx),
        headers,
        body,
      };
      const started = performance.now();
      // dispatch() reports begin/end to the balancer itself.
      const result = await dispatch(upstream.pool(ep, timeout.connect * 1000), dreq, {
        connectTimeoutMs: timeout.connect * 1000,
        sendTimeoutMs: timeout.send * 1000,
        readTimeoutMs: timeout.read * 1000,
      });
      if (result.ok) {
        ctx.upstreamLatencyMs = performance.now() - started;
        this.opts.outcomes?.status(upstream, ep, result.status);
        return this.respond(ctx, rt, chain, result, res, attempts);
      }
      this.opts.outcomes?.failure(upstream, ep, result.kind);
      lastFailure = result;
      if (pickCtx.tried === null) pickCtx.tried = new Set();
      pickCtx.tried.add(ep.key);
      attempts += `${attempts === '' ? '' : ', '}${result.kind === 'timeout' ? 504 : 502}`;
      this.opts.logger.warn({ route: ctx.routeId, upstream: ep.key, kind: result.kind, msg: result.message }, 'upstream attempt failed');
      if (!result.retryable || attempt >= retries || (retryDeadline > 0 && Date.now() > retryDeadline)) break;
    }
    const status = lastFailure !== null && !lastFailure.ok && lastFailure.kind === 'timeout' ? 504 : 502;
    ctx.upstreamStatus = status;
    // APISIX shows nginx's $upstream_status for a failed proxy too ("502, 502, 502" after retries).
    return this.finishLocal(ctx, rt.global, chain, res, { status, headers: { 'x-apisix-upstream-status': attempts } });
  }

  private clientBody(req: AnyRequest): Readable {
    const limit = this.opts.clientMaxBodySize;
    return limit > 0 ? req.pipe(new BodyLimiter(limit)) : (req as Readable);
  }

  private upstreamHost(ctx: RequestContext, upstream: UpstreamRuntime, domain: string, port: number): string {
    switch (upstream.passHost) {
      case 'node':
        return hostWithPort(domain, port, upstream.defaultPort ?? 80);
      case 'rewrite':
        return upstream.upstreamHost ?? ctx.request.host;
      default: {
        const h = ctx.request.headers.host ?? ctx.request.headers[':authority'];
        return (Array.isArray(h) ? h[0] : h) ?? ctx.request.host;
      }
    }
  }

  private respond(
    ctx: RequestContext,
    rt: HttpRuntime,
    chain: PluginChain,
    result: ProxiedResponse,
    res: AnyResponse,
    failedAttempts: string,
  ): void {
    ctx.upstreamStatus = result.status;
    const resp = ctx.response;
    resp.status = result.status;
    downstreamHeaders(result.headers, resp.headers);
    if (result.status >= 500 || this.opts.showUpstreamStatus) {
      resp.headers['x-apisix-upstream-status'] = failedAttempts === '' ? String(result.status) : `${failedAttempts}, ${result.status}`;
    }
    runHeaderFilter(rt.global, chain, ctx);
    const filtering = chain.body_filter.length > 0 || (rt.global !== null && rt.global.body_filter.length > 0);
    if (filtering) delete resp.headers['content-length'];
    const replacement = resp.replacement;
    if (replacement !== null) {
      result.discard();
      delete resp.headers['content-encoding'];
      sendLocal(res, resp.status, replacement, resp.headers);
      this.log(ctx, rt, chain, replacement.length);
      return;
    }
    (res as ServerResponse).writeHead(resp.status, resp.headers as Record<string, string | string[]>);
    streamResponse(this, ctx, rt, chain, result, res, filtering);
  }

  /** Answers locally after running header_filter/body_filter/log like a proxied response. */
  finishLocal(ctx: RequestContext, global: PluginChain | null, chain: PluginChain | null, res: AnyResponse, r: PluginResponse): void {
    const encoded = encodeBody(r);
    const resp = ctx.response;
    resp.status = r.status;
    resp.headers['content-type'] = encoded.contentType;
    if (this.opts.serverTokens) resp.headers['server'] = 'switchyard';
    if (r.headers !== undefined) for (const k in r.headers) resp.headers[k.toLowerCase()] = r.headers[k];
    let body = encoded.body;
    if (chain !== null || global !== null) {
      runHeaderFilter(global, chain, ctx);
      if (resp.replacement !== null) body = resp.replacement;
      else if ((chain !== null && chain.body_filter.length > 0) || (global !== null && global.body_filter.length > 0)) {
        body = runBodyFilter(global, chain, ctx, body, true) ?? Buffer.alloc(0);
      }
    }
    sendLocal(res, resp.status, body, resp.headers);
    this.log(ctx, { global } as HttpRuntime, chain, body.length);
  }

  fail(ctx: RequestContext, res: AnyResponse, status: number, message: string): void {
    sendLocal(res, status, Buffer.from(JSON.stringify({ error_msg: message })), { 'content-type': 'application/json' });
    ctx.response.status = status;
    this.opts.accessLog?.write(ctx, 0);
  }

  /** The log phase and the access log line; `bytes` is the body size sent to the client. */
  log(ctx: RequestContext, rt: Pick<HttpRuntime, 'global'>, chain: PluginChain | null, bytes: number): void {
    ctx.bytesSent = bytes;
    runLog(rt.global, chain, ctx);
    this.opts.accessLog?.write(ctx, bytes);
  }
}

function hasBody(req: AnyRequest): boolean {
  const h = req.headers;
  if (h['content-length'] !== undefined) return h['content-length'] !== '0';
  if (h['transfer-encoding'] !== undefined) return true;
  // HTTP/2 requests carry no framing header; END_STREAM tells.
  return req.httpVersionMajor === 2 && !(req as Http2ServerRequest).stream?.readableEnded && !(req as Http2ServerRequest).stream?.endAfterHeaders;
}

/** The client's own encoding is kept unless a plugin rewrote the path. */
function upstreamPath(ctx: RequestContext): string {
  const rq = ctx.request;
  // Plugins that rewrite the path (proxy-rewrite) store it already encoded for the upstream.
  const path = rq.path === ctx.originalPath ? ctx.rawPath : rq.path;
  return rq.query === '' ? path : `${path}?${rq.query}`;
}

function normalizeAddr(a: string): string {
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/** The client body for plugins that read it whole (bounded). */
class StreamedBody {
  private readonly req: AnyRequest;
  private readonly limit: number;
  constructor(req: AnyRequest, limit: number) {
    this.req = req;
    this.limit = limit;
  }
  read(): Promise<Buffer> {
    return readBounded(this.req, this.limit);
  }
}

export type { ServerResponse, Http2ServerResponse };
