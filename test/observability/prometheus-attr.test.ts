// plugin_attr.prometheus options on a real gateway: metric_prefix, default_buckets, metrics.*.extra_labels,
// export_uri, and enable_export_server: false with the metrics served on the data plane through public-api
// (APISIX lists the export URI among plugin APIs only then).
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { find, parseProm, value } from './prom-text.ts';

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    http
      .request({ host: '127.0.0.1', port, path, method }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type'] ?? '') }));
      })
      .on('error', reject)
      .end();
  });
}

describe('prometheus plugin_attr', () => {
  let gw: TestGateway;
  let up: EchoServer;

  beforeAll(async () => {
    up = await startEcho('a');
    gw = await startTestGateway({
      config: {
        plugin_attr: {
          prometheus: {
            enable_export_server: false,
            export_uri: '/custom/metrics',
            metric_prefix: 'swy_',
            default_buckets: [5, 50, 500],
            metrics: {
              http_status: { extra_labels: [{ upstream_addr: '$upstream_addr' }, { verb: '$request_method' }] },
              http_latency: { extra_labels: [{ up_status: '$upstream_status' }] },
              bandwidth: { extra_labels: [{ verb: '$request_method' }] },
            },
          },
        },
      },
    });
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/r1', { uri: '/a/*', upstream, plugins: { prometheus: {} } });
    await gw.put('/routes/metrics', { uri: '/custom/metrics', plugins: { 'public-api': {} } });
    await gw.put('/routes/alias', { uri: '/my-metrics', plugins: { 'public-api': { uri: '/custom/metrics' } } });
    await gw.put('/routes/wrong', { uri: '/wrong-public-api', plugins: { 'public-api': { uri: '/apisix/plugin/balalbala' } } });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  it('applies metric_prefix, default_buckets and extra_labels', async () => {
    expect((await get(gw.port, '/a/1')).status).toBe(200);
    expect((await get(gw.port, '/a/2', 'POST')).status).toBe(200);
    const r = await get(gw.port, '/custom/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toContain('text/plain');
    const m = parseProm(r.body);
    expect(find(m, 'apisix_http_status')).toHaveLength(0);
    const get1 = find(m, 'swy_http_status', { route: 'r1', verb: 'GET' });
    expect(get1).toHaveLength(1);
    expect(get1[0]!.labels.upstream_addr).toBe(up.addr);
    expect(get1[0]!.value).toBe(1);
    expect(value(m, 'swy_http_status', { route: 'r1', verb: 'POST' })).toBe(1);
    const les = find(m, 'swy_http_latency_bucket', { type: 'request', route: 'r1', up_status: '200' }).map((s) => s.labels.le);
    expect(les).toEqual(['5', '50', '500', '+Inf']);
    expect(value(m, 'swy_bandwidth', { type: 'ingress', route: 'r1', verb: 'POST' })).toBeGreaterThan(0);
    expect(find(m, 'swy_node_info')).toHaveLength(1);
  });

  it('public-api serves the export URI on routes, by its own path or by `uri`, GET only', async () => {
    const alias = await get(gw.port, '/my-metrics');
    expect(alias.status).toBe(200);
    expect(alias.body).toContain('# TYPE swy_http_requests_total gauge');
    expect((await get(gw.port, '/wrong-public-api')).status).toBe(404);
    expect((await get(gw.port, '/custom/metrics', 'POST')).status).toBe(404);
  });
});
