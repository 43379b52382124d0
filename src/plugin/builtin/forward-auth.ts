// forward-auth (APISIX priority 2002, access phase): asks an external authorization service about each request.
// The service gets X-Forwarded-Proto/-Method/-Host/-Uri/-For (scheme, method, host, request_uri, client
// address after real-ip), the client headers named in `request_headers`, and `extra_headers` (values are var
// templates). With `request_method: POST` the client body (up to `max_req_body_size`, else 413) and its
// Content-Encoding are sent too.
// - service answers >= 300: that status and body go to the client, with the `client_headers` it set;
// - service answers < 300: each `upstream_headers` header is copied to the upstream request, or removed from
//   it when the service did not set it (a client cannot forge it);
// - service unreachable / timed out: pass when `allow_degradation`, else `status_on_error` (403).
// `timeout` bounds connect, response head and body each (as lua-resty-http's set_timeout does).
import { Agent, type Dispatcher } from 'undici';
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { compileVarTemplate, renderTemplate, varToString, type VarTemplate } from '../template.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    uri: { type: 'string' },
    allow_degradation: { type: 'boolean', default: false },
    status_on_error: { type: 'integer', minimum: 200, maximum: 599, default: 403 },
    ssl_verify: { type: 'boolean', default: true },
    request_method: { type: 'string', default: 'GET', enum: ['GET', 'POST'] },
    max_req_body_size: { type: 'integer', minimum: 1, default: 67108864 },
    request_headers: { type: 'array', default: [], items: { type: 'string' } },
    extra_headers: {
      type: 'object',
      minProperties: 1,
      patternProperties: { '^[^:]+$': { type: 'string' } },
    },
    upstream_headers: { type: 'array', default: [], items: { type: 'string' } },
    client_headers: { type: 'array', default: [], items: { type: 'string' } },
    timeout: { type: 'integer', minimum: 1, maximum: 60000, default: 3000 },
    keepalive: { type: 'boolean', default: true },
    keepalive_timeout: { type: 'integer', minimum: 1000, default: 60000 },
    keepalive_pool: { type: 'integer', minimum: 1, default: 5 },
  },
  required: ['uri'],
};

/** The auth service's error body is relayed to the client; bound what is buffered. */
const MAX_AUTH_BODY = 1024 * 1024;

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

function headerText(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

class ForwardAuth implements PluginInstance {
  readonly #origin: string;
  readonly #path: string;
  readonly #post: boolean;
  readonly #maxBody: number;
  readonly #timeout: number;
  readonly #keepalive: boolean;
  readonly #degrade: boolean;
  readonly #onError: PluginResponse;
  /** Lower-cased client header names to forward, without the X-Forwarded-* ones the plugin sets itself. */
  readonly #requestHeaders: readonly string[];
  readonly #extra: readonly (readonly [string, VarTemplate])[];
  readonly #upstreamHeaders: readonly string[];
  readonly #clientHeaders: readonly string[];
  readonly #agent: Agent;
  readonly #logger: Logger;

  constructor(conf: JsonObject, logger: Logger) {
    const url = new URL(String(conf.uri));
    this.#origin = url.origin;
    this.#path = url.pathname + url.search;
    this.#post = conf.request_method === 'POST';
    this.#maxBody = Number(conf.max_req_body_size ?? 67108864);
    this.#timeout = Number(conf.timeout ?? 3000);
    this.#keepalive = conf.keepalive !== false;
    this.#degrade = conf.allow_degradation === true;
    this.#onError = { status: Number(conf.status_on_error ?? 403) };
    const extra = conf.extra_headers !== null && typeof conf.extra_headers === 'object' ? (conf.extra_headers as JsonObject) : {};
    this.#extra = Object.entries(extra).map(([k, v]) => [k.toLowerCase(), compileVarTemplate(String(v))] as const);
    const own = new Set(['x-forwarded-proto', 'x-forwarded-method', 'x-forwarded-host', 'x-forwarded-uri', 'x-forwarded-for']);
    for (const [k] of this.#extra) own.add(k);
    if (this.#post) own.add('content-encoding');
    this.#requestHeaders = strings(conf.request_headers).map((h) => h.toLowerCase()).filter((h) => !own.has(h));
    this.#upstreamHeaders = strings(conf.upstream_headers).map((h) => h.toLowerCase());
    this.#clientHeaders = strings(conf.client_headers).map((h) => h.toLowerCase());
    this.#agent = new Agent({
      connect: { timeout: this.#timeout, rejectUnauthorized: conf.ssl_verify !== false },
      headersTimeout: this.#timeout,
      bodyTimeout: this.#timeout,
      keepAliveTimeout: Number(conf.keepalive_timeout ?? 60000),
      connections: Number(conf.keepalive_pool ?? 5),
    });
    this.#logger = logger;
  }

  async access(ctx: HttpContext): Promise<PluginResponse | undefined> {
    const req = ctx.request;
    const vars = ctx.vars;
    const headers: Record<string, string> = {
      'x-forwarded-proto': req.scheme,
      'x-forwarded-method': req.method,
      'x-forwarded-host': varToString(vars.get('host')) || req.host,
      'x-forwarded-uri': varToString(vars.get('request_uri')),
      'x-forwarded-for': varToString(vars.get('remote_addr')) || req.remoteAddr,
    };
    let body: Buffer | null = null;
    if (this.#post) {
      const enc = headerText(req.headers['content-encoding']);
      if (enc !== undefined) headers['content-encoding'] = enc;
      try {
        body = await req.readBody();
      } catch {
        return { status: 413 };
      }
      if (body.length > this.#maxBody) return { status: 413 };
    }
    for (const [name, t] of this.#extra) headers[name] = renderTemplate(t, vars);
    for (const name of this.#requestHeaders) {
      const v = headerText(req.headers[name]);
      if (v !== undefined) headers[name] = v;
    }

    let res: Dispatcher.ResponseData;
    let text = '';
    try {
      res = await this.#agent.request({
        origin: this.#origin,
        path: this.#path,
        method: this.#post ? 'POST' : 'GET',
        headers,
        body,
        reset: !this.#keepalive,
      });
      if (res.statusCode >= 300) text = await readCapped(res.body);
      else await res.body.dump();
    } catch (err) {
      if (this.#degrade) return undefined;
      this.#logger.warn({ route: ctx.routeId, err }, 'failed to process forward auth');
      return this.#onError;
    }

    if (res.statusCode >= 300) {
      const out: Record<string, string> = {};
      for (const name of this.#clientHeaders) {
        const v = headerText(res.headers[name]);
        if (v !== undefined) out[name] = v;
      }
      return { status: res.statusCode, body: text, headers: out };
    }
    for (const name of this.#upstreamHeaders) {
      const v = res.headers[name];
      req.setHeader(name, v === undefined ? null : v);
    }
    return undefined;
  }

  destroy(): void {
    // Requests still in flight on the retired snapshot finish; the pool then closes.
    this.#agent.close().catch(() => undefined);
  }
}

async function readCapped(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of body) {
    const b = chunk as Buffer;
    n += b.length;
    if (n > MAX_AUTH_BODY) {
      body.destroy();
      break;
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString();
}

export const forwardAuthPlugin: PluginDef = {
  name: 'forward-auth',
  version: '0.1',
  priority: 2002,
  schema,
  subsystems: ['http'],
  status: 'stable',
  check(conf) {
    try {
      const u = new URL(String(conf.uri));
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'property "uri" must be an http or https URL';
    } catch {
      return 'property "uri" is not a valid URL';
    }
    return null;
  },
  create(conf, env) {
    return new ForwardAuth(conf, env.logger);
  },
};

export default forwardAuthPlugin;
