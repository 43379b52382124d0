// prometheus against the real gateway: every value asserted comes from requests and connections this test
// makes and is read back from the exporter the gateway started (plugin_attr.prometheus.export_addr).
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exporterOptionsFromAttr } from '../../../src/observability/metrics-exporter.ts';
import { prometheusPlugin as def } from '../../../src/plugin/builtin/prometheus.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { freePort } from '../../helpers/ports.ts';
import { waitFor } from '../../helpers/proc.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { find, parseProm, scrape, value, type Sample } from '../../observability/prom-text.ts';
import { confError } from '../helpers.ts';

/** GET over node:http (fetch cannot set Host); resolves to the status once the body is read. */
function httpGet(port: number, path: string, opts: { host?: string; agent?: http.Agent } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: opts.agent, headers: opts.host ? { host: opts.host } : {} }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

describe('prometheus', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let metricsUrl = '';
  let deadPort = 0;
  const get = (path: string, host?: string) => httpGet(gw.port, path, { host });
  const metrics = (): Promise<Sample[]> => scrape(metricsUrl);

  beforeAll(async () => {
    [gw, up] = await Promise.all([startTestGateway(), startEcho('a')]);
    deadPort = await freePort();
    metricsUrl = `http://127.0.0.1:${(gw.config.plugin_attr.prometheus!.export_addr as { port: number }).port}/apisix/prometheus/metrics`;
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/services/s1', { name: 'svc-one', upstream });
    await gw.put('/routes/r1', { uri: '/m/*', name: 'metered', service_id: 's1', plugins: { prometheus: {} } });
    await gw.put('/routes/r2', { uri: '/named/*', name: 'by-name', service_id: 's1', plugins: { prometheus: { prefer_name: true } } });
    await gw.put('/routes/r3', { uri: '/unmetered', upstream });
    await gw.put('/routes/r4', { uris: ['/status/4*', '/status/5*'], service_id: 's1', plugins: { prometheus: {} } });
    await gw.put('/routes/r5', { uri: '/hosted', hosts: ['*.example.com'], upstream, plugins: { prometheus: {} } });
    await gw.put('/routes/r6', { uri: '/delay/*', upstream });
    await gw.put('/upstreams/u-checked', {
      nodes: { [up.addr]: 1, [`127.0.0.1:${deadPort}`]: 1 },
      checks: {
        active: {
          type: 'http',
          http_path: '/',
          timeout: 1,
          healthy: { interval: 1, successes: 1 },
          unhealthy: { interval: 1, http_failures: 1, tcp_failures: 1, timeouts: 1 },
        },
      },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  it('validates like APISIX', () => {
    expect(confError(def, {})).toBeNull();
    expect(confError(def, { prefer_name: 1 })).not.toBeNull();
    expect(def.runPolicy).toBe('prefer_route');
    expect(exporterOptionsFromAttr(undefined)).toEqual({ ip: '127.0.0.1', port: 9091, path: '/apisix/prometheus/metrics', enabled: true });
  });

  it('counts requests per route with the matched URI and host, latency and bandwidth', async () => {
    const before = await metrics();
    const total0 = value(before, 'apisix_http_requests_total');
    expect(await get('/m/x')).toBe(200);
    expect(await get('/m/y?a=1')).toBe(200);
    expect(await get('/status/404')).toBe(404);
    expect(await get('/status/503')).toBe(503);
    expect(await get('/named/x')).toBe(200);
    expect(await get('/unmetered')).toBe(200);
    expect(await get('/hosted', 'api.example.com')).toBe(200);
    expect(await get('/no-such-route')).toBe(404);

    const m = await metrics();
    // http_requests_total counts every request the pipeline received, metered route or not.
    expect(value(m, 'apisix_http_requests_total') - total0).toBe(8);
    const r1 = find(m, 'apisix_http_status', { route: 'r1' });
    expect(r1).toHaveLength(1);
    expect(r1[0]!.labels).toEqual({
      code: '200', route: 'r1', matched_uri: '/m/*', matched_host: '', service: 's1', consumer: '', node: '127.0.0.1',
      request_type: 'traditional_http', request_llm_model: '', llm_model: '', response_source: 'upstream',
    });
    expect(r1[0]!.value).toBe(2);
    expect(value(m, 'apisix_http_status', { route: 'r4', code: '404', matched_uri: '/status/4*' })).toBe(1);
    expect(value(m, 'apisix_http_status', { route: 'r4', code: '503', matched_uri: '/status/5*' })).toBe(1);
    expect(value(m, 'apisix_http_status', { route: 'by-name', service: 'svc-one', matched_uri: '/named/*' })).toBe(1);
    expect(value(m, 'apisix_http_status', { route: 'r5', matched_uri: '/hosted', matched_host: '*.example.com' })).toBe(1);
    expect(find(m, 'apisix_http_status', { route: 'r3' })).toHaveLength(0);

    for (const type of ['request', 'upstream', 'apisix']) {
      expect(value(m, 'apisix_http_latency_count', { type, route: 'r1', service: 's1', node: '127.0.0.1' })).toBe(2);
      expect(value(m, 'apisix_http_latency_bucket', { type, route: 'r1', le: '+Inf' })).toBe(2);
      expect(value(m, 'apisix_http_latency_sum', { type, route: 'r1' })).toBeGreaterThanOrEqual(0);
    }
    // Buckets are cumulative and end at the count.
    const buckets = find(m, 'apisix_http_latency_bucket', { type: 'request', route: 'r1' }).map((s) => s.value);
    expect(buckets).toHaveLength(16);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]).toBeGreaterThanOrEqual(buckets[i - 1]!);
    // Ingress: at least the two request lines; egress: at least the two echoed bodies.
    expect(value(m, 'apisix_bandwidth', { type: 'ingress', route: 'r1' })).toBeGreaterThan('GET /m/x HTTP/1.1\r\n'.length * 2);
    expect(value(m, 'apisix_bandwidth', { type: 'egress', route: 'r1' })).toBeGreaterThan(200);
    expect(find(m, 'apisix_node_info')[0]!.labels.version).toMatch(/\d/);
  });

  it('keeps label sets apart when requests to one node alternate matched URI, host and consumer', async () => {
    // The plugin remembers the series last used per node: interleaved label sets must still count apart.
    await gw.put('/consumers/alice', { username: 'alice', plugins: { 'key-auth': { key: 'key-alice' } } });
    await gw.put('/consumers/bob', { username: 'bob', plugins: { 'key-auth': { key: 'key-bob' } } });
    await gw.put('/routes/r7', { uris: ['/alt/a*', '/alt/b*'], hosts: ['a.alt.test', 'b.alt.test'], upstream: { nodes: { [up.addr]: 1 } }, plugins: { prometheus: {} } });
    await gw.put('/routes/r8', { uri: '/keyed', upstream: { nodes: { [up.addr]: 1 } }, plugins: { prometheus: {}, 'key-auth': {} } });
    const keyed = (key: string) =>
      new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: gw.port, path: '/keyed', headers: { apikey: key } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        }).on('error', reject);
      });
    for (const [path, host] of [['/alt/a1', 'a.alt.test'], ['/alt/b1', 'a.alt.test'], ['/alt/a2', 'b.alt.test'], ['/alt/a3', 'a.alt.test'], ['/alt/b2', 'a.alt.test']] as const) {
      expect(await get(path, host)).toBe(200);
    }
    for (const key of ['key-alice', 'key-bob', 'key-alice', 'key-alice', 'key-bob', 'key-alice']) expect(await keyed(key)).toBe(200);
    const m = await metrics();
    const alt = (uri: string, host: string) => value(m, 'apisix_http_status', { route: 'r7', matched_uri: uri, matched_host: host });
    // r7 matches every path and Host of its lists; matched_uri / matched_host are the entry that matched.
    expect(find(m, 'apisix_http_status', { route: 'r7' }).reduce((n, x) => n + x.value, 0)).toBe(5);
    expect(alt('/alt/a*', 'a.alt.test') + alt('/alt/a*', 'b.alt.test')).toBe(3);
    expect(alt('/alt/b*', 'a.alt.test')).toBe(2);
    expect(alt('/alt/a*', 'b.alt.test')).toBe(1);
    expect(value(m, 'apisix_http_status', { route: 'r8', consumer: 'alice' })).toBe(4);
    expect(value(m, 'apisix_http_status', { route: 'r8', consumer: 'bob' })).toBe(2);
    expect(value(m, 'apisix_http_latency_count', { type: 'request', route: 'r8', consumer: 'bob' })).toBe(2);
  });

  it('reports HTTP connections by state from real sockets', async () => {
    const s0 = await metrics();
    const accepted0 = value(s0, 'apisix_nginx_http_current_connections', { state: 'accepted' });
    const active0 = value(s0, 'apisix_nginx_http_current_connections', { state: 'active' });
    const agent = new http.Agent({ keepAlive: true });
    await Promise.all(['/m/a', '/m/b', '/m/c'].map((p) => httpGet(gw.port, p, { agent })));
    // One request stays in flight while we scrape: it is "writing".
    const slow = httpGet(gw.port, '/delay/800', { agent: new http.Agent({ keepAlive: false }) });
    await new Promise((r) => setTimeout(r, 200));
    const s1 = await metrics();
    expect(value(s1, 'apisix_nginx_http_current_connections', { state: 'accepted' }) - accepted0).toBeGreaterThanOrEqual(4);
    expect(value(s1, 'apisix_nginx_http_current_connections', { state: 'handled' })).toBe(value(s1, 'apisix_nginx_http_current_connections', { state: 'accepted' }));
    expect(value(s1, 'apisix_nginx_http_current_connections', { state: 'active' }) - active0).toBeGreaterThanOrEqual(4);
    expect(value(s1, 'apisix_nginx_http_current_connections', { state: 'writing' })).toBeGreaterThanOrEqual(1);
    expect(value(s1, 'apisix_nginx_http_current_connections', { state: 'waiting' })).toBeGreaterThanOrEqual(3);
    await slow;
    agent.destroy();
    await waitFor(async () => value(await metrics(), 'apisix_nginx_http_current_connections', { state: 'active' }) <= active0 + 1, 5000, 50);
  });

  it('reports upstream node status from the health checker', async () => {
    const key = { name: '/apisix/upstreams/u-checked' };
    await waitFor(async () => find(await metrics(), 'apisix_upstream_status', { ...key, port: String(deadPort) }).some((s) => s.value === 0), 10_000, 200);
    const m = await metrics();
    expect(value(m, 'apisix_upstream_status', { ...key, ip: '127.0.0.1', port: String(up.port) })).toBe(1);
    expect(value(m, 'apisix_upstream_status', { ...key, ip: '127.0.0.1', port: String(deadPort) })).toBe(0);
  });

  it('writes valid exposition text with HELP and TYPE for every family', async () => {
    const text = await (await fetch(metricsUrl)).text();
    expect(() => parseProm(text)).not.toThrow();
    for (const [name, type] of [
      ['apisix_http_status', 'counter'],
      ['apisix_http_latency', 'histogram'],
      ['apisix_bandwidth', 'counter'],
      ['apisix_nginx_http_current_connections', 'gauge'],
      ['apisix_http_requests_total', 'gauge'],
      ['apisix_upstream_status', 'gauge'],
      ['apisix_node_info', 'gauge'],
      ['apisix_shared_dict_capacity_bytes', 'gauge'],
      ['apisix_nginx_metric_errors_total', 'counter'],
    ]) expect(text).toContain(`# TYPE ${name} ${type}\n`);
  });

  it('answers 404 off the export path', async () => {
    expect((await fetch(metricsUrl.replace('/metrics', '/other'))).status).toBe(404);
  });
});
