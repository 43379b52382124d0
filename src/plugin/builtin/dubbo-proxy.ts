// dubbo-proxy (APISIX priority 507, not enabled by default): answers the request by calling a Dubbo 2 provider
// of the route's upstream over hessian2, as APISIX's @dubbo_pass location with Tengine's mod_dubbo does
// (dubbo_pass_all_headers on, dubbo_pass_body on):
// - the call is `<method>(Map<String, Object>)` on `service_name`/`service_version`; `method` defaults to the
//   request URI without its leading '/'. The map holds the request body under "body" (byte[], only when not
//   empty) and every request header under its lower-cased name.
// - the provider returns a map: "status" (string or number) is the HTTP status, "body" the response body,
//   every other entry a response header. Without "status" the answer is 502, as mod_dubbo's default.
// - anything that is not such a map (null, an exception, an error status such as a version mismatch, an
//   undecodable reply) is 502; a call that outlives the upstream's send + read timeouts is 504.
//   The exception's class and message are logged (warn), not sent: under mod_dubbo's contract the provider
//   writes the HTTP answer itself (a Map with status and body), so a Java exception is an internal failure,
//   and its message (stack details, SQL, hostnames) would reach clients APISIX never shows it to. Routes
//   that want exceptions as JSON use http-dubbo with serialization hessian2 ({"error_msg", "exception"}).
// - the provider comes from the route's upstream through the shared balancer; a call that could not be sent
//   (connect failure) moves to another node within the upstream's retries; attempts feed passive health.
// Connections are multiplexed (plugin_attr dubbo-proxy.upstream_multiplex_count, default 32) and shared.
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Endpoint } from '../../upstream/balancer.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { runAttempts, type AttemptResult, type AttemptTimeouts } from '../terminal-attempts.ts';
import { upstreamCallers, type DubboCaller } from '../terminals.ts';
import { classify, readBody } from './dubbo/common.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    service_name: { type: 'string', minLength: 1 },
    service_version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+' },
    method: { type: 'string', minLength: 1 },
  },
  required: ['service_name', 'service_version'],
};

const MAP_DESC = 'Ljava/util/Map;';
const DEFAULT_MULTIPLEX = 32;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const BAD_VALUE = /[\r\n\0]/;
/** Framing headers are the gateway's own; a provider map cannot set them. */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'trailer']);
/** Whole-body request bodies are bounded by client_max_body_size; this caps the rest. */
const MAX_BODY = 64 * 1024 * 1024;
const BAD_GATEWAY: PluginResponse = { status: 502 };
const TIMED_OUT: PluginResponse = { status: 504 };

interface Call {
  readonly caller: DubboCaller;
  readonly plugin: DubboProxy;
  readonly method: string;
  readonly arg: Record<string, unknown>;
}

function text(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v === null || v === undefined) return null;
  return JSON.stringify(v);
}

function statusOf(v: unknown): number {
  const s = text(v);
  if (s === null || !/^\s*\d{3}\s*$/.test(s)) return 502;
  const n = Number(s);
  return n >= 100 && n <= 599 ? n : 502;
}

/** mod_dubbo's mapping of the provider's map to the HTTP answer; null when the value is not a map. */
export function responseOf(value: unknown): PluginResponse | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Buffer.isBuffer(value)) return null;
  const entries: Iterable<[unknown, unknown]> = value instanceof Map ? value : Object.entries(value as Record<string, unknown>);
  let status = 502;
  let body: Buffer | string = '';
  const headers: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (typeof k !== 'string') continue;
    const lower = k.toLowerCase();
    if (lower === 'body') {
      body = Buffer.isBuffer(v) ? v : (text(v) ?? '');
    } else if (lower === 'status') {
      status = statusOf(v);
    } else if (TOKEN.test(k) && !FRAMING.has(lower)) {
      const s = text(v);
      if (s !== null && !BAD_VALUE.test(s)) headers[k] = s;
    }
  }
  return { status, body, headers };
}

/** The call's argument: the body (when not empty) and the request headers by lower-cased name. */
export function argumentOf(ctx: HttpContext, body: Buffer): Record<string, unknown> {
  const m: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (body.length > 0) m.body = body;
  const h = ctx.request.headers;
  for (const k in h) {
    const v = h[k];
    if (v === undefined) continue;
    // Repeated headers reach mod_dubbo as repeated map keys; the Java HashMap keeps the last.
    m[k] = Array.isArray(v) ? v[v.length - 1] : v;
  }
  return m;
}

async function attempt(endpoint: Endpoint, t: AttemptTimeouts, c: Call): Promise<AttemptResult<PluginResponse>> {
  const p = c.plugin;
  const r = await c.caller.invoke(endpoint, {
    service: p.service,
    version: p.version,
    method: c.method,
    paramTypes: MAP_DESC,
    args: [{ $class: 'java.util.HashMap', $: c.arg }],
    timeoutMs: t.sendMs + t.readMs,
    connectTimeoutMs: t.connectMs,
    multiplex: p.multiplex,
  });
  switch (r.kind) {
    case 'value': {
      const resp = responseOf(r.value);
      if (resp !== null) return { ok: true, status: resp.status, value: resp };
      p.logger.warn({ provider: endpoint.key, service: p.service, method: c.method }, 'dubbo-proxy: the provider did not return a Map');
      return { ok: true, status: 502, value: BAD_GATEWAY };
    }
    case 'null':
      p.logger.warn({ provider: endpoint.key, service: p.service, method: c.method }, 'dubbo-proxy: the provider returned null');
      return { ok: true, status: 502, value: BAD_GATEWAY };
    case 'exception':
      p.logger.warn({ provider: endpoint.key, service: p.service, method: c.method, exception: r.exception.className, msg: r.exception.message }, 'dubbo-proxy: the provider threw');
      return { ok: true, status: 502, value: BAD_GATEWAY };
    case 'status':
      p.logger.error({ provider: endpoint.key, service: p.service, version: p.version, method: c.method, status: r.status, msg: r.message }, 'dubbo-proxy: the provider refused the call, may be version or group mismatch');
      return { ok: true, status: 502, value: BAD_GATEWAY };
    default: {
      const f = classify(r);
      p.logger.error({ provider: endpoint.key, code: r.code, msg: r.message }, 'dubbo-proxy: upstream call failed');
      return { ok: false, kind: f.kind, retryable: f.retryable, value: f.kind === 'timeout' ? TIMED_OUT : BAD_GATEWAY };
    }
  }
}

export class DubboProxy implements PluginInstance {
  readonly service: string;
  readonly version: string;
  readonly multiplex: number;
  readonly logger: Logger;
  readonly #method: string | null;

  constructor(conf: JsonObject, attr: JsonObject | undefined, logger: Logger) {
    this.service = conf.service_name as string;
    this.version = conf.service_version as string;
    this.#method = typeof conf.method === 'string' ? conf.method : null;
    const m = attr?.upstream_multiplex_count;
    this.multiplex = typeof m === 'number' && m >= 1 ? Math.floor(m) : DEFAULT_MULTIPLEX;
    this.logger = logger;
  }

  async before_proxy(ctx: HttpContext): Promise<PhaseResult> {
    // A route without upstream: the pipeline answers as APISIX does for it.
    if (ctx.upstreamAddr === undefined) return undefined;
    const caller = upstreamCallers.get('dubbo');
    if (caller === undefined) {
      this.logger.error('dubbo-proxy: no Dubbo caller registered (protocols/dubbo setup did not run)');
      return { status: 500 };
    }
    const body = await readBody(ctx, MAX_BODY);
    if (!Buffer.isBuffer(body)) return body;
    const method = this.#method ?? String(ctx.vars.get('uri') ?? '/').slice(1);
    const call: Call = { caller, plugin: this, method, arg: argumentOf(ctx, body) };
    const run = await runAttempts(ctx, attempt, call);
    if (run === null) {
      this.logger.error({ route: ctx.routeId }, 'dubbo-proxy: the upstream attempt state of the request is not reachable');
      return { status: 500 };
    }
    const resp = run.value;
    if (resp.status < 500) return resp;
    const shown = run.ok ? (run.failedStatuses === '' ? String(resp.status) : `${run.failedStatuses}, ${resp.status}`) : run.failedStatuses;
    return { ...resp, headers: { ...resp.headers, 'x-apisix-upstream-status': shown } };
  }
}

export const dubboProxyPlugin: PluginDef = {
  name: 'dubbo-proxy',
  version: '0.1',
  priority: 507,
  schema,
  subsystems: ['http'],
  status: 'experimental',
  create(conf, env) {
    return new DubboProxy(conf, env.attr, env.logger);
  },
};
