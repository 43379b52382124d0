import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetricsExporter, exporterOptionsFromAttr, type MetricsExporter } from '../../../src/observability/metrics-exporter.ts';
import { gatewayStats } from '../../../src/observability/metrics.ts';
import { prometheusPlugin as def } from '../../../src/plugin/builtin/prometheus.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { confError } from '../helpers.ts';

describe('prometheus', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let exporter: MetricsExporter;
  let metricsUrl = '';

  beforeAll(async () => {
    [gw, up] = await Promise.all([startTestGateway(), startEcho('a')]);
    exporter = createMetricsExporter({ ip: '127.0.0.1', port: 0 });
    const addr = await exporter.listen();
    metricsUrl = `http://127.0.0.1:${addr.port}/apisix/prometheus/metrics`;
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/services/s1', { name: 'svc-one', upstream });
    await gw.put('/routes/r1', { uri: '/m/*', name: 'metered', service_id: 's1', plugins: { prometheus: {} } });
    await gw.put('/routes/r2', { uri: '/named/*', name: 'by-name', service_id: 's1', plugins: { prometheus: { prefer_name: true } } });
    await gw.put('/routes/r3', { uri: '/unmetered', upstream });
    await gw.put('/routes/r4', { uri: '/status/*', service_id: 's1', plugins: { prometheus: {} } });
  });
  afterAll(async () => {
    await exporter?.close();
    await gw?.close();
    await up?.close();
  });

  it('validates like APISIX', () => {
    expect(confError(def, {})).toBeNull();
    expect(confError(def, { prefer_name: 1 })).not.toBeNull();
    expect(def.runPolicy).toBe('prefer_route');
    expect(exporterOptionsFromAttr(undefined)).toEqual({ ip: '127.0.0.1', port: 9091, path: '/apisix/prometheus/metrics', enabled: true });
  });

  it('exports APISIX metric names after traffic', async () => {
    for (let i = 0; i < 2; i++) expect((await fetch(`${gw.url}/m/x`)).status).toBe(200);
    expect((await fetch(`${gw.url}/status/404`)).status).toBe(404);
    expect((await fetch(`${gw.url}/named/x`)).status).toBe(200);
    expect((await fetch(`${gw.url}/unmetered`)).status).toBe(200);
    gatewayStats.requestStarted();
    gatewayStats.requestFinished();

    const r = await fetch(metricsUrl);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/plain');
    const text = await r.text();
    const line = (prefix: string) => text.split('\n').find((l) => l.startsWith(prefix));
    expect(line('apisix_http_status{code="200",route="r1",matched_uri="",matched_host="",service="s1",consumer="",node="127.0.0.1"}')).toMatch(/ 2$/);
    expect(line('apisix_http_status{code="404",route="r4"')).toMatch(/ 1$/);
    expect(line('apisix_http_status{code="200",route="by-name",matched_uri="",matched_host="",service="svc-one"')).toMatch(/ 1$/);
    expect(text).not.toContain('route="r3"');
    expect(line('apisix_http_latency_count{type="request",route="r1",service="s1",consumer="",node="127.0.0.1"}')).toMatch(/ 2$/);
    expect(line('apisix_http_latency_count{type="upstream",route="r1"')).toMatch(/ 2$/);
    expect(line('apisix_http_latency_count{type="apisix",route="r1"')).toMatch(/ 2$/);
    expect(text).toContain('apisix_http_latency_bucket{le="1",type="request",route="r1"');
    expect(Number(line('apisix_bandwidth{type="ingress",route="r1"')?.split(' ')[1])).toBeGreaterThan(0);
    expect(Number(line('apisix_bandwidth{type="egress",route="r1"')?.split(' ')[1])).toBeGreaterThan(0);
    expect(line('apisix_node_info{hostname=')).toMatch(/version="[^"]+"} 1$/);
    expect(line('apisix_etcd_reachable ')).toBe('apisix_etcd_reachable 1');
    expect(Number(line('apisix_http_requests_total ')?.split(' ')[1])).toBeGreaterThanOrEqual(1);
    expect(text).toContain('apisix_nginx_http_current_connections{state="active"}');
  });

  it('answers 404 off the export path', async () => {
    expect((await fetch(metricsUrl.replace('/metrics', '/other'))).status).toBe(404);
  });
});
