// grpc-web (APISIX priority 505): lets browsers call a gRPC upstream (scheme grpc/grpcs) with gRPC-Web.
// - access: OPTIONS answers 204 (CORS preflight); other methods than POST get 405; a Content-Type other than
//   application/grpc-web, application/grpc-web+proto (binary) or application/grpc-web-text(+proto) (base64)
//   gets 400 (nginx's HTML page, as APISIX). The `*` part of the matched route URI (APISIX's `:ext`)
//   becomes the upstream path; the request goes upstream as application/grpc over HTTP/2 with `te: trailers`.
// - request_body_filter: the body streams upstream as it arrives; text bodies are base64-decoded chunk by chunk
//   (chunks may split quads). Bodies over max_req_body_size are refused (400 when Content-Length says so
//   upfront; mid-stream the upstream request is aborted).
// - header_filter: Access-Control-Allow-Origin `*` unless a CORS plugin set one, Access-Control-Expose-Headers
//   grpc-message,grpc-status, and for OPTIONS Access-Control-Allow-Methods POST and
//   Access-Control-Allow-Headers (cors_allow_headers). Proxied answers take the request's gRPC-Web MIME type
//   and lose Content-Length.
// - body_filter: frames pass through as they arrive (base64-encoded per chunk in text mode, as APISIX); at the
//   end the upstream's trailers become the trailer frame (0x80), status 2 "upstream grpc status not received"
//   when none came, nothing when grpc-status already went out in the head (trailers-only). Unlike APISIX (its
//   TEST 12 calls keeping them status quo) the HTTP trailers are then dropped, as Envoy does.
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { Base64StreamDecoder, trailerFrame } from './grpc-web/codec.ts';

const DEFAULT_CORS_ALLOW_HEADERS = 'content-type,x-grpc-web,x-user-agent';
const EXPOSE_HEADERS = 'grpc-message,grpc-status';
const MAX_BODY = 64 * 1024 * 1024;

const schema: JsonObject = {
  type: 'object',
  properties: {
    max_req_body_size: { type: 'integer', minimum: 1, default: MAX_BODY },
    cors_allow_headers: { type: 'string', default: DEFAULT_CORS_ALLOW_HEADERS },
  },
};

/** gRPC-Web MIME types and whether their body is base64 text. */
const ENCODINGS: ReadonlyMap<string, boolean> = new Map([
  ['application/grpc-web', false],
  ['application/grpc-web+proto', false],
  ['application/grpc-web-text', true],
  ['application/grpc-web-text+proto', true],
]);

const KEY = 'grpc-web';
const EMPTY = Buffer.alloc(0);
const PREFLIGHT: PluginResponse = Object.freeze({ status: 204, body: '' });
const NOT_ALLOWED: PluginResponse = Object.freeze({ status: 405 });
const BAD_REQUEST: PluginResponse = Object.freeze({ status: 400 });

/** Per-request state, in ctx.pluginData. */
class Exchange {
  /** The request's Content-Type, echoed on the response. */
  readonly mime: string;
  /** Local answer of this plugin (preflight, 405, 400): headers only, no body rewriting. */
  readonly skip: boolean;
  readonly text: boolean;
  decoder: Base64StreamDecoder | null = null;
  received = 0;
  /** grpc-status went out in the response head (trailers-only): no trailer frame. */
  metadataSent = false;

  constructor(mime: string, skip: boolean, text: boolean) {
    this.mime = mime;
    this.skip = skip;
    this.text = text;
  }
}

function contentType(ctx: HttpContext): string {
  const v = ctx.request.headers['content-type'];
  return (Array.isArray(v) ? v[0] : v) ?? '';
}

class GrpcWeb implements PluginInstance {
  readonly #allowHeaders: string;
  readonly #maxBody: number;
  /** The last matched route URI and the length of its literal prefix before a trailing `*` (-1: none). */
  #pattern = '';
  #prefix = -1;

  constructor(conf: JsonObject) {
    this.#allowHeaders = typeof conf.cors_allow_headers === 'string' ? conf.cors_allow_headers : DEFAULT_CORS_ALLOW_HEADERS;
    this.#maxBody = typeof conf.max_req_body_size === 'number' ? conf.max_req_body_size : MAX_BODY;
  }

  access(ctx: HttpContext): PluginResponse | undefined {
    const mime = contentType(ctx);
    const method = ctx.request.method;
    if (method === 'OPTIONS') return this.#exit(ctx, mime, PREFLIGHT);
    if (method !== 'POST') return this.#exit(ctx, mime, NOT_ALLOWED);
    const text = ENCODINGS.get(mime);
    if (text === undefined) return this.#exit(ctx, mime, BAD_REQUEST);
    const cl = ctx.request.headers['content-length'];
    if (cl !== undefined && Number(cl) > this.#maxBody) return this.#exit(ctx, mime, BAD_REQUEST);
    const ex = new Exchange(mime, false, text);
    if (text) ex.decoder = new Base64StreamDecoder();
    ctx.pluginData.set(KEY, ex);
    const path = this.#ext(ctx);
    if (path !== null) ctx.request.path = path;
    const req = ctx.request;
    req.setHeader('content-type', 'application/grpc');
    req.setHeader('te', 'trailers');
    // The decoded body is shorter than the text one; HTTP/2 frames it anyway.
    if (text) req.setHeader('content-length', null);
    ctx.setUpstreamProtocol('h2');
    return undefined;
  }

  request_body_filter(ctx: HttpContext, chunk: Buffer, eof: boolean): Buffer | null {
    // hot path
    const ex = ctx.pluginData.get(KEY) as Exchange | undefined;
    if (ex === undefined || ex.skip) return chunk;
    ex.received += chunk.length;
    // Thrown errors abort the upstream request (the body cannot be answered 400 once it is streaming).
    if (ex.received > this.#maxBody) throw new Error(`grpc-web request body over max_req_body_size (${this.#maxBody})`);
    const dec = ex.decoder;
    if (dec === null) return chunk;
    const out = chunk.length > 0 ? dec.push(chunk) : EMPTY;
    if (eof) dec.finish();
    return out;
  }

  header_filter(ctx: HttpContext): void {
    const resp = ctx.response;
    if (ctx.request.method === 'OPTIONS') {
      resp.setHeader('access-control-allow-methods', 'POST');
      resp.setHeader('access-control-allow-headers', this.#allowHeaders);
    }
    // A CORS plugin (higher priority, its header_filter runs first) may have chosen the origin already.
    if (resp.headers['access-control-allow-origin'] === undefined) resp.setHeader('access-control-allow-origin', '*');
    resp.setHeader('access-control-expose-headers', EXPOSE_HEADERS);
    const ex = ctx.pluginData.get(KEY) as Exchange | undefined;
    if (ex === undefined || ex.skip) return;
    resp.setHeader('content-type', ex.mime);
    resp.setHeader('content-length', null);
    ex.metadataSent = resp.headers['grpc-status'] !== undefined;
  }

  body_filter(ctx: HttpContext, chunk: Buffer, eof: boolean): Buffer | null {
    // hot path
    const ex = ctx.pluginData.get(KEY) as Exchange | undefined;
    if (ex === undefined || ex.skip) return chunk;
    let out = ex.text && chunk.length > 0 ? Buffer.from(chunk.toString('base64'), 'latin1') : chunk;
    if (!eof || ex.metadataSent) return out;
    const resp = ctx.response;
    const t = resp.trailers;
    const status = t?.['grpc-status'];
    const ok = status !== undefined && status !== '';
    let frame = trailerFrame(ok ? status : '2', ok ? (t!['grpc-message'] ?? '') : 'upstream grpc status not received', ok ? t : null);
    if (ex.text) frame = Buffer.from(frame.toString('base64'), 'latin1');
    resp.trailers = null;
    out = out.length === 0 ? frame : Buffer.concat([out, frame]);
    return out;
  }

  #exit(ctx: HttpContext, mime: string, r: PluginResponse): PluginResponse {
    ctx.pluginData.set(KEY, new Exchange(mime, true, false));
    return r;
  }

  /** The part of the path matched by a trailing `*` of the route URI, with a leading '/'; null when none. */
  #ext(ctx: HttpContext): string | null {
    const matched = ctx.vars.get('matched_uri');
    if (typeof matched !== 'string') return null;
    if (matched !== this.#pattern) {
      this.#pattern = matched;
      // Only a bare trailing `*` after literal segments is APISIX's `:ext`; other patterns keep the path.
      this.#prefix = matched.endsWith('*') && matched.indexOf(':') < 0 && matched.indexOf('*') === matched.length - 1 ? matched.length - 1 : -1;
    }
    if (this.#prefix < 0) return null;
    const rest = ctx.request.path.slice(this.#prefix);
    if (rest === '') return null;
    return rest.charCodeAt(0) === 47 ? rest : `/${rest}`;
  }
}

export const grpcWebPlugin: PluginDef = {
  name: 'grpc-web',
  version: '0.1',
  priority: 505,
  schema,
  subsystems: ['http'],
  status: 'stable',
  create(conf) {
    return new GrpcWeb(conf);
  },
};

export default grpcWebPlugin;
