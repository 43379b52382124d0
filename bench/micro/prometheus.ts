// Micro benchmark of the prometheus plugin's log phase: CPU ns per request for (a) the plugin as built
// (labelled series cached per label tuple), over 4 routes x 3 status codes x 2 nodes, and (b) the same
// per-request metric updates through prom-client's label API (what the plugin did before: counter.inc and
// histogram.observe with label objects), as a baseline. Median of several batches.
// `npx node bench/micro/prometheus.ts [--smoke]`.
import { fileURLToPath } from 'node:url';
import { Counter as PromCounter, Histogram as PromHistogram, Registry as PromRegistry } from 'prom-client';
import { RequestContext } from '../../src/pipeline/context.ts';
import { prometheusPlugin } from '../../src/plugin/builtin/prometheus.ts';
import type { PluginEnv } from '../../src/plugin/plugin.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { DEFAULT_BUCKETS } from '../../src/observability/metrics.ts';

const N_CTX = 24;

function contexts(): RequestContext[] {
  const out: RequestContext[] = [];
  for (let i = 0; i < N_CTX; i++) {
    const ctx = new RequestContext({
      method: 'GET',
      path: `/api/v${i % 4}/items`,
      forwardPath: `/api/v${i % 4}/items`,
      query: 'page=2',
      rawUri: `/api/v${i % 4}/items?page=2`,
      headers: { host: 'api.example.com', 'user-agent': 'bench/1.0', accept: '*/*', 'x-request-id': 'abc' },
      remoteAddr: '192.0.2.10',
      remotePort: 40000 + i,
      serverAddr: '127.0.0.1',
      serverPort: 9080,
      scheme: 'http',
      httpVersion: '1.1',
      host: 'api.example.com',
      tls: null,
    });
    ctx.routeId = `route-${i % 4}`;
    ctx.matchedUri = `/api/v${i % 4}/*`;
    ctx.serviceId = 'svc-1';
    ctx.balancerIp = `10.0.0.${1 + (i % 2)}`;
    ctx.upstreamLatencyMs = 3.2;
    ctx.response.status = [200, 404, 502][i % 3]!;
    ctx.response.headers['content-type'] = 'application/json';
    ctx.response.headers['content-length'] = '512';
    ctx.bytesSent = 512;
    out.push(ctx);
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

function measure(fn: (ctx: RequestContext) => void, ctxs: RequestContext[], batches: number, perBatch: number): number {
  const samples: number[] = [];
  for (let k = 0; k < batches; k++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < perBatch; i++) fn(ctxs[i % N_CTX]!);
    samples.push(Number(process.hrtime.bigint() - start) / perBatch);
  }
  return median(samples);
}

export function run(smoke: boolean): Record<string, number> {
  const batches = smoke ? 3 : 15;
  const perBatch = smoke ? 2_000 : 50_000;
  const ctxs = contexts();
  const env = { logger: silentLogger, metadata: undefined, attr: undefined, scopeKey: 'bench', consumers: { find: () => undefined, withPlugin: () => [] } } as PluginEnv;
  const plugin = prometheusPlugin.create({}, env);
  const cached = (ctx: RequestContext) => plugin.log!(ctx);

  const reg = new PromRegistry();
  const status = new PromCounter({ name: 'b_status', help: 'h', labelNames: ['code', 'route', 'matched_uri', 'matched_host', 'service', 'consumer', 'node'], registers: [reg] });
  const latency = new PromHistogram({ name: 'b_latency', help: 'h', labelNames: ['type', 'route', 'service', 'consumer', 'node'], buckets: [...DEFAULT_BUCKETS], registers: [reg] });
  const bandwidth = new PromCounter({ name: 'b_bw', help: 'h', labelNames: ['type', 'route', 'service', 'consumer', 'node'], registers: [reg] });
  const promClient = (ctx: RequestContext) => {
    const route = ctx.routeId;
    const service = ctx.serviceId ?? '';
    const node = ctx.balancerIp ?? '';
    status.inc({ code: String(ctx.response.status), route, matched_uri: ctx.matchedUri, matched_host: '', service, consumer: '', node });
    const total = Number(process.hrtime.bigint() - ctx.startNs) / 1e6;
    latency.observe({ type: 'request', route, service, consumer: '', node }, total);
    latency.observe({ type: 'upstream', route, service, consumer: '', node }, 3.2);
    latency.observe({ type: 'apisix', route, service, consumer: '', node }, total - 3.2);
    bandwidth.inc({ type: 'ingress', route, service, consumer: '', node }, 300);
    bandwidth.inc({ type: 'egress', route, service, consumer: '', node }, 600);
  };
  // Warm both (JIT, first-use series creation) before measuring.
  measure(cached, ctxs, 2, 5_000);
  measure(promClient, ctxs, 2, 5_000);
  return {
    plugin_log_ns: measure(cached, ctxs, batches, perBatch),
    prom_client_labels_ns: measure(promClient, ctxs, batches, perBatch),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const smoke = process.argv.includes('--smoke');
  const r = run(smoke);
  for (const [k, v] of Object.entries(r)) console.log(`${k.padEnd(24)} ${v.toFixed(0)} ns`);
}
