// APISIX's Grafana dashboard against a real Prometheus server: a gateway on etcd gets real traffic (one route
// with an unhealthy node among its health-checked upstream), Prometheus (Debian package) scrapes the exporter
// every second, and every metric the dashboard's queries name must exist in Prometheus, non-zero where the
// traffic implies it. Metric names come from the dashboard JSON in the APISIX source when it is available
// (parsed from its `expr` fields), else from the same names listed here.
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdPeer } from '../helpers/etcd.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { startPrometheus, type PrometheusServer } from './prometheus-server.ts';

const DASHBOARD_NAMES = [
  'apisix_bandwidth', 'apisix_etcd_modify_indexes', 'apisix_etcd_reachable', 'apisix_http_latency_bucket',
  'apisix_http_requests_total', 'apisix_http_status', 'apisix_nginx_http_current_connections',
  'apisix_nginx_metric_errors_total', 'apisix_shared_dict_capacity_bytes', 'apisix_shared_dict_free_space_bytes',
];

function dashboardMetricNames(): { names: string[]; exprs: number } {
  try {
    const json = execFileSync('git', ['-C', '/work/.mirror/apache+apisix/repo', 'show', 'HEAD:docs/assets/other/json/apisix-grafana-dashboard.json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const exprs: string[] = [];
    const walk = (o: unknown): void => {
      if (Array.isArray(o)) o.forEach(walk);
      else if (o !== null && typeof o === 'object') {
        for (const [k, v] of Object.entries(o)) {
          if ((k === 'expr' || k === 'query') && typeof v === 'string') exprs.push(v);
          else walk(v);
        }
      }
    };
    walk(JSON.parse(json));
    const names = new Set<string>();
    for (const e of exprs) for (const m of e.matchAll(/apisix_[a-z_]+/g)) names.add(m[0]);
    return { names: [...names].sort(), exprs: exprs.length };
  } catch {
    return { names: DASHBOARD_NAMES, exprs: 0 };
  }
}

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });
}

describe('APISIX Grafana dashboard on a real Prometheus', () => {
  let etcd: EtcdPeer;
  let gw: TestGateway;
  let up: EchoServer;
  let prom: PrometheusServer;
  let deadPort = 0;

  beforeAll(async () => {
    [etcd, up] = await Promise.all([startEtcd(), startEcho('a')]);
    gw = await startTestGateway({ etcd: { endpoint: etcd.endpoint } });
    deadPort = await freePort();
    const metricsPort = (gw.config.plugin_attr.prometheus!.export_addr as { port: number }).port;
    prom = await startPrometheus([`127.0.0.1:${metricsPort}`], '/apisix/prometheus/metrics');
    await gw.put('/upstreams/u1', {
      nodes: { [up.addr]: 1, [`127.0.0.1:${deadPort}`]: 1 },
      checks: { active: { type: 'tcp', timeout: 1, healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, tcp_failures: 1, timeouts: 1 } } },
    });
    await gw.put('/services/s1', { name: 'svc', upstream_id: 'u1' });
    await gw.put('/routes/r1', { uri: '/dash/*', service_id: 's1', plugins: { prometheus: {} } });
    await gw.put('/global_rules/g1', { plugins: { prometheus: {} } });
  }, 40_000);
  afterAll(async () => {
    await prom?.stop();
    await gw?.close();
    await up?.close();
    await etcd?.stop();
  });

  it('every metric the dashboard queries exists after traffic, non-zero where traffic implies it', async () => {
    const { names, exprs } = dashboardMetricNames();
    expect(names.length).toBeGreaterThanOrEqual(10);
    if (exprs > 0) expect(names).toEqual(expect.arrayContaining(DASHBOARD_NAMES));
    // Traffic: metered route (some answers from the dead node are retried on the live one), an unmatched path.
    // Some before the first scrape, the rest after it, so rate() over the series sees an increase.
    for (let i = 0; i < 5; i++) expect([200, 502]).toContain(await get(gw.port, `/dash/${i}`));
    await prom.targetsUp();
    await waitFor(async () => (await prom.query('sum(apisix_http_status)')).length === 1, 10_000, 200);
    for (let i = 5; i < 20; i++) expect([200, 502]).toContain(await get(gw.port, `/dash/${i}`));
    expect(await get(gw.port, '/nowhere')).toBe(404);
    // Wait for a scrape taken after the traffic and after the checker marked the dead node.
    await waitFor(async () => {
      const r = await prom.query(`apisix_upstream_status{port="${deadPort}"}`);
      const s = await prom.query('sum(apisix_http_status)');
      return r.length === 1 && r[0]!.value[1] === '0' && s.length === 1 && Number(s[0]!.value[1]) >= 21;
    }, 15_000, 250);

    for (const name of names) {
      const r = await prom.query(name);
      expect(r.length, `${name} in Prometheus`).toBeGreaterThan(0);
    }
    const one = async (expr: string) => Number((await prom.query(expr))[0]?.value[1] ?? NaN);
    expect(await one('sum(apisix_http_requests_total)')).toBeGreaterThanOrEqual(21);
    expect(await one('sum(apisix_http_status{route="r1"})')).toBe(20);
    // The unmatched request is counted by the global rule's instance with an empty route.
    expect(await one('sum(apisix_http_status{route="",code="404"})')).toBe(1);
    expect(await one('sum(apisix_bandwidth{type="ingress"})')).toBeGreaterThan(0);
    expect(await one('sum(apisix_bandwidth{type="egress"})')).toBeGreaterThan(0);
    expect(await one('sum(apisix_http_latency_count{type="request",route="r1"})')).toBe(20);
    expect(await one('sum(apisix_nginx_http_current_connections{state="accepted"})')).toBeGreaterThan(0);
    expect(await one('apisix_etcd_reachable')).toBe(1);
    expect(await one('apisix_etcd_modify_indexes{key="routes"}')).toBeGreaterThan(0);
    expect(await one('apisix_etcd_modify_indexes{key="max_modify_index"}')).toBeGreaterThanOrEqual(await one('apisix_etcd_modify_indexes{key="routes"}'));
    expect(await one('apisix_etcd_modify_indexes{key="x_etcd_index"}')).toBeGreaterThanOrEqual(await one('apisix_etcd_modify_indexes{key="max_modify_index"}'));
    expect(await one(`apisix_upstream_status{name="/apisix/upstreams/u1",port="${up.port}"}`)).toBe(1);
    expect(await one('sum(apisix_shared_dict_capacity_bytes)')).toBeGreaterThan(0);
    expect(await one('sum(apisix_nginx_metric_errors_total)')).toBe(0);
    // A dashboard panel query evaluates (histogram_quantile over the latency buckets).
    expect(await one('histogram_quantile(0.99, sum(rate(apisix_http_latency_bucket{type=~"request"}[1m])) by (le))')).toBeGreaterThan(0);
  }, 30_000);

  it('etcd_reachable drops to 0 when etcd is down', async () => {
    const metricsPort = (gw.config.plugin_attr.prometheus!.export_addr as { port: number }).port;
    await etcd.kill();
    try {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/apisix/prometheus/metrics`)).text();
      expect(text).toMatch(/^apisix_etcd_reachable 0$/m);
    } finally {
      await etcd.restart();
    }
  }, 20_000);
});
