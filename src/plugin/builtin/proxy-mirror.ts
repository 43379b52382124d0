// proxy-mirror (APISIX priority 1010): copies a sample (`sample_ratio`) of proxied requests to `host`
// (http(s)://ip-or-name[:port]) in the background; the mirror's outcome never affects the client's response.
// - target path: `path` (replace mode, default) or `path` + the request uri (`path_concat_mode: prefix`);
//   without `path` the client's request uri; the client's query string is kept;
// - method, headers (hop-by-hop removed) and body are copied. Bodies are mirrored up to MIRROR_MAX_BODY bytes
//   (buffered once; the main request then sends the same buffer); a larger declared body is not mirrored;
// - fired in before_proxy, once an upstream node is picked, so only requests that really go upstream are
//   mirrored (nginx's mirror runs at the proxy stage too; routes without an upstream and plugins that call
//   their backend themselves, as ai-proxy, are not mirrored); timeouts from plugin_attr.proxy-mirror.timeout {connect, read} (seconds, default 60
//   each, APISIX's; `send` does not apply: the body is sent from memory); at most MAX_IN_FLIGHT mirrors run at once, extra samples are dropped.
import { Agent, type Dispatcher } from 'undici';
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import type { HeaderMap, HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance } from '../plugin.ts';

export const MIRROR_MAX_BODY = 1024 * 1024;
const MAX_IN_FLIGHT = 1000;

const schema: JsonObject = {
  type: 'object',
  properties: {
    host: { type: 'string', pattern: '^(http|https)://([\\da-zA-Z.-]+|\\[[\\da-fA-F:]+\\])(:\\d+)?$' },
    path: { type: 'string', pattern: '^/[^?&]+$' },
    path_concat_mode: { type: 'string', default: 'replace', enum: ['replace', 'prefix'] },
    sample_ratio: { type: 'number', minimum: 0.00001, maximum: 1, default: 1 },
  },
  required: ['host'],
};

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authorization', 'http2-settings', 'content-length',
]);

interface Timeouts {
  readonly connectMs: number;
  readonly readMs: number;
}

let inFlight = 0;
const agents = new Map<string, Agent>();

/** One agent per timeout setting (plugin_attr is per process, so in practice one). */
function agentFor(t: Timeouts): Agent {
  const k = `${t.connectMs}/${t.readMs}`;
  let a = agents.get(k);
  if (a === undefined) {
    a = new Agent({ connect: { timeout: t.connectMs }, headersTimeout: t.readMs, bodyTimeout: t.readMs, keepAliveTimeout: 60_000 });
    agents.set(k, a);
  }
  return a;
}

/** Mirrors in progress (tests, diagnostics). */
export function mirrorsInFlight(): number {
  return inFlight;
}

function mirrorHeaders(src: HeaderMap): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in src) {
    const v = src[name];
    if (v === undefined || name.charCodeAt(0) === 58 || HOP_BY_HOP.has(name)) continue;
    out[name] = v;
  }
  return out;
}

function seconds(v: unknown, fallback: number): number {
  return typeof v === 'number' && v > 0 ? v * 1000 : fallback;
}

class ProxyMirror implements PluginInstance {
  readonly #origin: string;
  readonly #path: string | undefined;
  readonly #prefix: boolean;
  readonly #ratio: number;
  readonly #timeouts: Timeouts;
  readonly #logger: Logger;

  constructor(conf: JsonObject, attr: JsonObject | undefined, logger: Logger) {
    this.#origin = conf.host as string;
    this.#path = typeof conf.path === 'string' ? conf.path : undefined;
    this.#prefix = conf.path_concat_mode === 'prefix';
    this.#ratio = (conf.sample_ratio as number | undefined) ?? 1;
    const t = (attr?.timeout as JsonObject | undefined) ?? {};
    this.#timeouts = { connectMs: seconds(t.connect, 60_000), readMs: seconds(t.read, 60_000) };
    this.#logger = logger;
  }

  #target(ctx: HttpContext): string {
    const rawUri = String(ctx.vars.get('request_uri') ?? '/');
    const q = rawUri.indexOf('?');
    const query = q < 0 ? '' : rawUri.slice(q);
    const uri = q < 0 ? rawUri : rawUri.slice(0, q);
    const path = this.#path === undefined ? uri : this.#prefix ? this.#path + uri : this.#path;
    return this.#origin + path + query;
  }

  before_proxy(ctx: HttpContext): PhaseResult | Promise<PhaseResult> {
    // No upstream picked: a route without one (answered 503 before any proxying in APISIX) or a plugin calling
    // its backend itself (ai-proxy's bypass_nginx_upstream: APISIX answers in the access phase, before nginx's
    // mirror would run). Neither is mirrored.
    if (ctx.upstreamAddr === undefined) return undefined;
    if (inFlight >= MAX_IN_FLIGHT) return undefined;
    if (this.#ratio < 1 && Math.random() >= this.#ratio) return undefined;
    const headers = ctx.request.headers;
    const cl = headers['content-length'];
    const hasBody = (typeof cl === 'string' && cl !== '0') || headers['transfer-encoding'] !== undefined;
    if (!hasBody) {
      this.#send(ctx, null);
      return undefined;
    }
    if (typeof cl === 'string' && Number(cl) > MIRROR_MAX_BODY) {
      this.#logger.debug({ route: ctx.routeId }, 'request body too large to mirror');
      return undefined;
    }
    return this.#withBody(ctx);
  }

  async #withBody(ctx: HttpContext): Promise<undefined> {
    let body: Buffer;
    try {
      body = await ctx.request.readBody();
    } catch {
      // The main request reports its own body error.
      return undefined;
    }
    if (body.length <= MIRROR_MAX_BODY) this.#send(ctx, body);
    return undefined;
  }

  #send(ctx: HttpContext, body: Buffer | null): void {
    inFlight++;
    const opts: Dispatcher.RequestOptions = {
      origin: this.#origin,
      path: this.#target(ctx).slice(this.#origin.length),
      method: ctx.request.method as Dispatcher.HttpMethod,
      headers: mirrorHeaders(ctx.request.headers),
      body,
      headersTimeout: this.#timeouts.readMs,
      bodyTimeout: this.#timeouts.readMs,
    };
    agentFor(this.#timeouts)
      .request(opts)
      .then(
        (res) => res.body.dump(),
        (err: Error) => this.#logger.warn({ route: ctx.routeId, err: err.message }, 'mirror request failed'),
      )
      .catch(() => undefined)
      .finally(() => {
        inFlight--;
      });
  }
}

export const proxyMirrorPlugin: PluginDef = {
  name: 'proxy-mirror',
  version: '0.1',
  priority: 1010,
  schema,
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    return new ProxyMirror(conf, env.attr, env.logger);
  },
};

export default proxyMirrorPlugin;
