// prometheus (APISIX priority 500, log phase, run_policy prefer_route; stream log too): records per-request
// metrics into the process registry (src/observability/metrics.ts), served by the exporter on
// plugin_attr.prometheus.export_addr (127.0.0.1:9091) at export_uri, or on the data plane via public-api.
// Labels: route / service are ids, or names with `prefer_name` (falling back to ids); consumer is the consumer
// name; node the upstream IP; matched_uri / matched_host the route URI / host pattern the router matched;
// then the `metrics.<name>.extra_labels` of plugin_attr, read from variables. Latency types: request (whole
// request), upstream (dispatch to response headers), apisix (request minus upstream). Bandwidth: ingress =
// request line + headers + body, egress = status line + headers + body (header sizes from parsed headers).
// Cost: the labelled series of one (route, service, consumer, node, matched uri/host, extra values) tuple are
// looked up once and cached in the instance, so a request does one string concat, one map lookup and a few
// additions; bench/micro/prometheus.ts measures it.
import type { JsonObject } from '../../config/resources.ts';
import { metricsTextFromHere } from '../../observability/cluster-metrics.ts';
import { exporterSettings } from '../../observability/metrics-exporter.ts';
import { TEXT_CONTENT_TYPE } from '../../observability/registry.ts';
import { gatewayMetrics, metricsOptionsFromAttr, type ExtraLabel, type GatewayMetrics } from '../../observability/metrics.ts';
import type { CounterChild, HistogramChild } from '../../observability/registry.ts';
import type { HeaderMap, HttpContext, MutableVars, StreamContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { registerPublicApi } from './public-api.ts';
import { varToString } from '../template.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    prefer_name: { type: 'boolean', default: false },
  },
};

const SEP = '\u0001';
/** Distinct label tuples cached per instance before the cache starts over (the registry keeps every series). */
const CACHE_LIMIT = 4096;

// hot path
function headerBytes(h: HeaderMap): number {
  let n = 0;
  for (const k in h) {
    const v = h[k];
    if (v === undefined) continue;
    if (typeof v === 'string') n += k.length + v.length + 4;
    else for (let i = 0; i < v.length; i++) n += k.length + v[i]!.length + 4;
  }
  return n + 2;
}

function labelOf(v: unknown): string {
  return v === undefined || v === null ? '' : varToString(v as string);
}

function extraValues(vars: MutableVars, extra: readonly ExtraLabel[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < extra.length; i++) out.push(labelOf(vars.get(extra[i]!.variable)));
  return out;
}

/** The series one label tuple writes to. */
class Series {
  readonly #m: GatewayMetrics;
  /** http_status label values with code left empty at index 0. */
  readonly #statusLabels: string[];
  readonly #status = new Map<number, CounterChild>();
  readonly request: HistogramChild;
  readonly upstream: HistogramChild;
  readonly apisix: HistogramChild;
  readonly ingress: CounterChild;
  readonly egress: CounterChild;

  constructor(m: GatewayMetrics, route: string, muri: string, mhost: string, service: string, consumer: string, node: string, vars: MutableVars) {
    this.#m = m;
    this.#statusLabels = ['', route, muri, mhost, service, consumer, node, ...extraValues(vars, m.extra.status)];
    const lat = extraValues(vars, m.extra.latency);
    this.request = m.latency.child(['request', route, service, consumer, node, ...lat]);
    this.upstream = m.latency.child(['upstream', route, service, consumer, node, ...lat]);
    this.apisix = m.latency.child(['apisix', route, service, consumer, node, ...lat]);
    const bw = extraValues(vars, m.extra.bandwidth);
    this.ingress = m.bandwidth.child(['ingress', route, service, consumer, node, ...bw]);
    this.egress = m.bandwidth.child(['egress', route, service, consumer, node, ...bw]);
  }

  status(code: number): CounterChild {
    // hot path
    let c = this.#status.get(code);
    if (c === undefined) {
      this.#statusLabels[0] = String(code);
      c = this.#m.status.child(this.#statusLabels);
      this.#status.set(code, c);
    }
    return c;
  }
}

class Prometheus implements PluginInstance {
  readonly #preferName: boolean;
  readonly #m: GatewayMetrics;
  readonly #extraVars: readonly string[];
  readonly #cache = new Map<string, Series>();
  readonly #stream = new Map<string, CounterChild>();

  constructor(conf: JsonObject, m: GatewayMetrics) {
    this.#preferName = conf.prefer_name === true;
    this.#m = m;
    this.#extraVars = [...m.extra.status, ...m.extra.latency, ...m.extra.bandwidth].map((e) => e.variable);
  }

  // hot path
  log(ctx: HttpContext): void {
    const vars = ctx.vars;
    const route = this.#preferName ? labelOf(vars.get('route_name')) || ctx.routeId : ctx.routeId;
    const serviceId = ctx.serviceId ?? '';
    const service = this.#preferName && serviceId !== '' ? labelOf(vars.get('service_name')) || serviceId : serviceId;
    const consumer = ctx.consumer?.username ?? '';
    const node = labelOf(vars.get('balancer_ip'));
    const muri = labelOf(vars.get('matched_uri'));
    const mhost = labelOf(vars.get('matched_host'));
    let key = route + SEP + service + SEP + consumer + SEP + node + SEP + muri + SEP + mhost;
    const extra = this.#extraVars;
    for (let i = 0; i < extra.length; i++) key += SEP + labelOf(vars.get(extra[i]!));
    let s = this.#cache.get(key);
    if (s === undefined) {
      if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
      s = new Series(this.#m, route, muri, mhost, service, consumer, node, vars);
      this.#cache.set(key, s);
    }
    s.status(ctx.response.status).inc();
    const totalMs = Number(process.hrtime.bigint() - ctx.startNs) / 1e6;
    s.request.observe(totalMs);
    const up = ctx.upstreamLatencyMs;
    if (up !== undefined) {
      s.upstream.observe(up);
      s.apisix.observe(totalMs > up ? totalMs - up : 0);
    } else s.apisix.observe(totalMs);
    const req = ctx.request;
    const reqBody = Number(req.headers['content-length'] ?? 0) || 0;
    s.ingress.inc(req.method.length + req.path.length + req.query.length + 12 + headerBytes(req.headers) + reqBody);
    s.egress.inc(17 + headerBytes(ctx.response.headers) + (ctx.bytesSent ?? 0));
  }

  streamLog(ctx: StreamContext): void {
    const route = this.#preferName ? labelOf(ctx.vars.get('route_name')) || ctx.routeId : ctx.routeId;
    let c = this.#stream.get(route);
    if (c === undefined) {
      c = this.#m.streamConnections.child([route]);
      this.#stream.set(route, c);
    }
    c.inc();
  }
}

async function serveMetrics(): Promise<PluginResponse> {
  return { status: 200, body: await metricsTextFromHere(), headers: { 'content-type': TEXT_CONTENT_TYPE } };
}

// APISIX lists the export URI among the plugin APIs only when the export server is off.
registerPublicApi((method, uri) => {
  const s = exporterSettings();
  return !s.enabled && method === 'GET' && uri === s.path ? serveMetrics : null;
});

export const prometheusPlugin: PluginDef = {
  name: 'prometheus',
  version: '0.2',
  priority: 500,
  schema,
  runPolicy: 'prefer_route',
  subsystems: ['http', 'stream'],
  status: 'stable',
  create(conf, env) {
    return new Prometheus(conf, gatewayMetrics(metricsOptionsFromAttr(env.attr)));
  },
};

export default prometheusPlugin;
