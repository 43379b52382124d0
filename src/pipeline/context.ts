// RequestContext: the HttpContext one request carries through router, plugins, balancer and dispatch.
import type { JsonObject } from '../config/resources.ts';
import type {
  ConsumerRef,
  HeaderMap,
  HeaderValue,
  HttpContext,
  HttpRequestView,
  HttpResponseView,
  MutableVars,
  UpstreamProtocol,
} from '../plugin/context.ts';
import type { TlsInfo } from './downstream.ts';
import type { VarValue } from '../router/vars.ts';
import { resolveVar } from './vars.ts';

const CLIENT_CLOSED = new Error('client closed the connection');

export interface RequestBodySource {
  /** Reads the whole body, bounded; rejects with a status-carrying error when over the limit. */
  read(): Promise<Buffer>;
}

class Vars implements MutableVars {
  readonly ctx: RequestContext;
  constructor(ctx: RequestContext) {
    this.ctx = ctx;
  }
  get(name: string): VarValue {
    return resolveVar(this.ctx, name);
  }
  set(name: string, value: VarValue): void {
    const ctx = this.ctx;
    if (ctx.customVars === null) ctx.customVars = new Map();
    ctx.customVars.set(name, value);
    if (name === 'remote_addr' && typeof value === 'string') ctx.request.remoteAddr = value;
  }
}

class RequestView implements HttpRequestView {
  method: string;
  path: string;
  query: string;
  readonly headers: HeaderMap;
  remoteAddr: string;
  readonly remotePort: number;
  readonly serverAddr: string;
  readonly serverPort: number;
  readonly scheme: 'http' | 'https';
  readonly httpVersion: string;
  host: string;
  body: Buffer | null = null;
  bodySource: RequestBodySource | null = null;
  bodyChanged = false;

  constructor(init: RequestInit) {
    this.method = init.method;
    this.path = init.path;
    this.query = init.query;
    this.headers = init.headers as HeaderMap;
    this.remoteAddr = init.remoteAddr;
    this.remotePort = init.remotePort;
    this.serverAddr = init.serverAddr;
    this.serverPort = init.serverPort;
    this.scheme = init.scheme;
    this.httpVersion = init.httpVersion;
    this.host = init.host;
  }

  setHeader(name: string, value: HeaderValue | null): void {
    const key = name.toLowerCase();
    if (value === null) delete this.headers[key];
    else this.headers[key] = value;
  }

  async readBody(): Promise<Buffer> {
    if (this.body !== null) return this.body;
    this.body = this.bodySource === null ? Buffer.alloc(0) : await this.bodySource.read();
    return this.body;
  }

  setBody(body: Buffer | string): void {
    this.body = typeof body === 'string' ? Buffer.from(body) : body;
    this.bodyChanged = true;
  }
}

class ResponseView implements HttpResponseView {
  status = 0;
  headers: HeaderMap = {};
  replacement: Buffer | null = null;
  trailers: Record<string, string> | null = null;

  setHeader(name: string, value: HeaderValue | null): void {
    const key = name.toLowerCase();
    if (value === null) delete this.headers[key];
    else this.headers[key] = value;
  }

  replaceBody(body: Buffer | string): void {
    this.replacement = typeof body === 'string' ? Buffer.from(body) : body;
  }
}

export interface RequestInit {
  method: string;
  /** Decoded, normalized path (matching, the `uri` var). */
  path: string;
  /** The path the upstream receives unless a plugin rewrites it (src/router/uri.ts). */
  forwardPath: string;
  query: string;
  rawUri: string;
  headers: HeaderMap;
  remoteAddr: string;
  remotePort: number;
  serverAddr: string;
  serverPort: number;
  scheme: 'http' | 'https';
  httpVersion: string;
  host: string;
  tls: TlsInfo | null;
}

export class RequestContext implements HttpContext {
  readonly vars: MutableVars;
  readonly request: RequestView;
  readonly response: ResponseView = new ResponseView();
  readonly rawUri: string;
  /** Path forwarded upstream (encoded: the client's own encoding unless normalization changed the path) and
   * the decoded, normalized path that was matched. */
  readonly rawPath: string;
  readonly originalPath: string;
  /** The TCP peer address (remote_addr may be changed by real-ip). */
  readonly peerAddr: string;
  readonly startNs: bigint = process.hrtime.bigint();
  readonly pluginData = new Map<string, unknown>();
  customVars: Map<string, VarValue> | null = null;
  params: Record<string, string> | null = null;
  /** The router input; during matching the router puts the candidate route's captures in its params. */
  matchInput: { params: Record<string, string> | null } | null = null;
  routeId = '';
  /** The route URI / host pattern the router matched ('' when none): APISIX curr_req_matched _path / _host. */
  matchedUri = '';
  matchedHost = '';
  routeName: string | undefined = undefined;
  serviceId: string | undefined = undefined;
  serviceName: string | undefined = undefined;
  consumer: ConsumerRef | null = null;
  upstreamOverride: string | JsonObject | null = null;
  /** Set by protocol-translating plugins; undefined: as the upstream configures. */
  upstreamProtocol: UpstreamProtocol | undefined = undefined;
  readonly tls: TlsInfo | null;
  upstreamAddr: string | undefined = undefined;
  /** The Host header and scheme of the last upstream request (nginx $upstream_host / $upstream_scheme). */
  upstreamHost: string | undefined = undefined;
  upstreamScheme: string | undefined = undefined;
  balancerIp: string | undefined = undefined;
  balancerPort: number | undefined = undefined;
  upstreamStatus: number | undefined = undefined;
  upstreamLatencyMs: number | undefined = undefined;
  /**
   * The gRPC status the exchange ended with ($grpc_status), one of '0'..'16' (grpcStatusText in
   * src/pipeline/grpc.ts): the grpc-status trailer or trailers-only head of an application/grpc answer, or the
   * gateway's own gRPC answer; undefined for other traffic, whatever headers it carries.
   */
  grpcStatus: string | undefined = undefined;
  bytesSent = 0;
  private query_: URLSearchParams | null = null;
  private cookies_: Map<string, string> | null = null;
  private postArgs_: URLSearchParams | null | undefined = undefined;
  /** Behind clientSignal, created on first access; clientGone_ covers a first access after the close. */
  private clientAbort_: AbortController | null = null;
  private clientGone_ = false;

  constructor(init: RequestInit) {
    this.request = new RequestView(init);
    this.rawUri = init.rawUri;
    this.rawPath = init.forwardPath;
    this.originalPath = init.path;
    this.peerAddr = init.remoteAddr;
    this.tls = init.tls;
    this.vars = new Vars(this);
  }

  setUpstream(upstream: string | JsonObject): void {
    this.upstreamOverride = upstream;
  }

  get clientSignal(): AbortSignal {
    if (this.clientAbort_ === null) {
      this.clientAbort_ = new AbortController();
      if (this.clientGone_) this.clientAbort_.abort(CLIENT_CLOSED);
    }
    return this.clientAbort_.signal;
  }

  /** The client went away before the exchange ended (Transaction.onClose). */
  clientClosed(): void {
    this.clientGone_ = true;
    this.clientAbort_?.abort(CLIENT_CLOSED);
  }

  setUpstreamProtocol(protocol: UpstreamProtocol): void {
    this.upstreamProtocol = protocol;
  }

  headerValue(name: string): string | undefined {
    const v = this.request.headers[name];
    return v === undefined ? undefined : Array.isArray(v) ? v.join(', ') : v;
  }

  /** `http_x_api_key` -> header `x-api-key`. */
  headerByVarName(suffix: string): string | undefined {
    const direct = this.request.headers[suffix];
    if (direct !== undefined) return Array.isArray(direct) ? direct.join(', ') : direct;
    if (suffix.indexOf('_') < 0) return undefined;
    return this.headerValue(suffix.replaceAll('_', '-'));
  }

  queryParams(): URLSearchParams {
    if (this.query_ === null) this.query_ = new URLSearchParams(this.request.query);
    return this.query_;
  }

  /** Invalidates the parsed query after a plugin rewrote it. */
  queryChanged(): void {
    this.query_ = null;
  }

  cookies(): Map<string, string> {
    if (this.cookies_ === null) {
      const jar = new Map<string, string>();
      const raw = this.headerValue('cookie');
      if (raw !== undefined) {
        for (const part of raw.split(';')) {
          const eq = part.indexOf('=');
          if (eq <= 0) continue;
          const k = part.slice(0, eq).trim();
          if (!jar.has(k)) jar.set(k, part.slice(eq + 1).trim());
        }
      }
      this.cookies_ = jar;
    }
    return this.cookies_;
  }

  /** Form body args, available once a plugin has read the body (post_arg_* vars). */
  postArgs(): URLSearchParams | null {
    if (this.postArgs_ !== undefined) return this.postArgs_;
    const body = this.request.body;
    const ct = this.headerValue('content-type') ?? '';
    if (body === null) return null;
    if (ct.startsWith('application/x-www-form-urlencoded')) this.postArgs_ = new URLSearchParams(body.toString());
    else if (ct.startsWith('application/json')) {
      const out = new URLSearchParams();
      try {
        const parsed = JSON.parse(body.toString()) as unknown;
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
          for (const [k, v] of Object.entries(parsed)) if (v !== null && typeof v !== 'object') out.append(k, String(v));
        }
      } catch {
        /* not JSON: no post args */
      }
      this.postArgs_ = out;
    } else this.postArgs_ = null;
    return this.postArgs_;
  }
}
