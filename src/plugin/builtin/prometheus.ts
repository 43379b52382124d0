// prometheus (APISIX priority 500, log phase, run_policy prefer_route): records per-request metrics into the
// process registry (src/observability/metrics.ts), exported by the metrics exporter on
// plugin_attr.prometheus.export_addr (127.0.0.1:9091) at /apisix/prometheus/metrics.
// Labels: route / service are ids, or names with `prefer_name` (falling back to ids); consumer is the consumer
// name; node the upstream IP; matched_uri / matched_host come from the `matched_uri` / `matched_host` variables
// when the HTTP core provides them. Latency types: request (whole request), upstream (dispatch to response
// headers), apisix (request minus upstream). Bandwidth: ingress = request line + headers + body, egress =
// response headers + body (header sizes estimated from the parsed headers).
import type { JsonObject } from '../../config/resources.ts';
import { gatewayMetrics, type GatewayMetrics } from '../../observability/metrics.ts';
import type { HeaderMap, HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance } from '../plugin.ts';
import { varToString } from '../template.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    prefer_name: { type: 'boolean', default: false },
  },
};

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

class Prometheus implements PluginInstance {
  readonly #preferName: boolean;
  readonly #m: GatewayMetrics;

  constructor(conf: JsonObject, m: GatewayMetrics) {
    this.#preferName = conf.prefer_name === true;
    this.#m = m;
  }

  // hot path
  log(ctx: HttpContext): void {
    const vars = ctx.vars;
    const route = this.#preferName ? labelOf(vars.get('route_name')) || ctx.routeId : ctx.routeId;
    const serviceId = ctx.serviceId ?? '';
    const service = this.#preferName ? labelOf(vars.get('service_name')) || serviceId : serviceId;
    const consumer = ctx.consumer?.username ?? '';
    const node = labelOf(vars.get('balancer_ip'));
    const m = this.#m;
    m.status.inc({
      code: String(ctx.response.status),
      route,
      matched_uri: labelOf(vars.get('matched_uri')),
      matched_host: labelOf(vars.get('matched_host')),
      service,
      consumer,
      node,
    });
    const totalMs = Number(process.hrtime.bigint() - ctx.startNs) / 1e6;
    m.latency.observe({ type: 'request', route, service, consumer, node }, totalMs);
    const up = ctx.upstreamLatencyMs;
    if (up !== undefined) {
      m.latency.observe({ type: 'upstream', route, service, consumer, node }, up);
      m.latency.observe({ type: 'apisix', route, service, consumer, node }, Math.max(0, totalMs - up));
    }
    const req = ctx.request;
    const reqBody = Number(req.headers['content-length'] ?? 0) || 0;
    const ingress = req.method.length + req.path.length + req.query.length + 12 + headerBytes(req.headers) + reqBody;
    m.bandwidth.inc({ type: 'ingress', route, service, consumer, node }, ingress);
    const egress = 17 + headerBytes(ctx.response.headers) + (ctx.bytesSent ?? 0);
    m.bandwidth.inc({ type: 'egress', route, service, consumer, node }, egress);
  }
}

export const prometheusPlugin: PluginDef = {
  name: 'prometheus',
  version: '0.2',
  priority: 500,
  schema,
  runPolicy: 'prefer_route',
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    const attr = env.attr;
    const buckets = Array.isArray(attr?.default_buckets) ? (attr.default_buckets as number[]) : undefined;
    const prefix = typeof attr?.metric_prefix === 'string' ? attr.metric_prefix : undefined;
    return new Prometheus(conf, gatewayMetrics({ prefix, buckets }));
  },
};

export default prometheusPlugin;
