// The Control API's APISIX endpoints against an in-process gateway (control server on a random port):
// /v1/routes|services|upstreams and their single-item forms follow Admin API writes (update, delete),
// /v1/plugin_metadatas, /v1/schema, the HTML health page, PUT /v1/plugins/reload re-reading config.yaml,
// the method rules, and the DNS discovery dump against a real dnsmasq.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { healthHtml } from '../../src/health/control-api.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startDnsmasq, type Dnsmasq } from '../helpers/dnsmasq.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/proc.ts';
import { httpBackend, type Backend } from './helpers.ts';

let gw: TestGateway;
let dns: Dnsmasq;
let control: string;
const backends: Backend[] = [];

beforeAll(async () => {
  dns = await startDnsmasq({ records: { 'svc.control.test': '127.0.0.7' } });
  const port = await freePort();
  gw = await startTestGateway({
    config: {
      apisix: { enable_control: true, control: { ip: '127.0.0.1', port } },
      discovery: { dns: { servers: [`127.0.0.1:${dns.port}`] } },
    },
  });
  control = `http://127.0.0.1:${port}`;
}, 30_000);

afterAll(async () => {
  await gw?.close();
  await dns?.stop();
});

afterEach(async () => {
  for (const b of backends.splice(0)) await b.stop();
});

async function ctl(p: string, init?: RequestInit): Promise<{ status: number; type: string | null; text: string; json: any }> {
  const res = await fetch(control + p, init);
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, type: res.headers.get('content-type'), text, json };
}

async function del(p: string): Promise<void> {
  const r = await gw.admin('DELETE', p);
  expect(r.status).toBe(200);
  await gw.synced();
}

describe('resources from the data plane snapshot', () => {
  it('routes: list and one, following update and delete', async () => {
    await gw.put('/upstreams/u1', { nodes: { '127.0.0.1:1980': 1 }, type: 'roundrobin' });
    await gw.put('/routes/r1', { uri: '/one', upstream_id: 'u1' });
    const list = await ctl('/v1/routes');
    expect(list.status).toBe(200);
    expect(list.type).toBe('application/json');
    const mine = (list.json as any[]).find((e) => e.value.id === 'r1');
    const stored = gw.gw.store!.get('routes', 'r1')!;
    expect(mine).toMatchObject({
      key: '/apisix/routes/r1',
      has_domain: false,
      createdIndex: stored.createdIndex,
      modifiedIndex: stored.modifiedIndex,
      orig_modifiedIndex: stored.modifiedIndex,
      value: { id: 'r1', uri: '/one', upstream_id: 'u1', status: 1, priority: 0 },
    });

    await gw.put('/routes/r1', { uri: '/two', upstream_id: 'u1' });
    const one = await ctl('/v1/route/r1');
    expect(one.status).toBe(200);
    expect(one.json.value.uri).toBe('/two');
    expect(one.json.modifiedIndex).toBe(gw.gw.store!.get('routes', 'r1')!.modifiedIndex);

    await del('/routes/r1');
    expect(await ctl('/v1/route/r1')).toMatchObject({ status: 404, json: { error_msg: 'route[r1] not found' } });
    expect((await ctl('/v1/routes')).json.some((e: any) => e.value.id === 'r1')).toBe(false);
    await del('/upstreams/u1');
  });

  it('inline upstreams show array nodes and has_domain, as APISIX data plane holds them', async () => {
    await gw.put('/routes/r2', {
      uri: '/r2',
      upstream: { nodes: { '127.0.0.1:1980': 2, 'localhost:1981': 1 }, type: 'roundrobin' },
    });
    const r = await ctl('/v1/route/r2');
    expect(r.json.has_domain).toBe(true);
    expect(r.json.value.upstream).toMatchObject({
      type: 'roundrobin',
      scheme: 'http',
      pass_host: 'pass',
      hash_on: 'vars',
      nodes: [
        { host: '127.0.0.1', port: 1980, weight: 2 },
        { host: 'localhost', port: 1981, weight: 1 },
      ],
    });
    await del('/routes/r2');
  });

  it('services and upstreams', async () => {
    await gw.put('/upstreams/u3', { nodes: [{ host: '127.0.0.2', port: 80, weight: 3 }], type: 'chash', key: 'remote_addr' });
    await gw.put('/services/s3', { upstream_id: 'u3', plugins: { 'limit-count': { count: 2, time_window: 60 } } });
    const ups = await ctl('/v1/upstreams');
    expect((ups.json as any[]).find((e) => e.value.id === 'u3')).toMatchObject({
      key: '/apisix/upstreams/u3',
      has_domain: false,
      value: { type: 'chash', key: 'remote_addr', nodes: [{ host: '127.0.0.2', port: 80, weight: 3, priority: 0 }] },
    });
    const svc = await ctl('/v1/service/s3');
    expect(svc.status).toBe(200);
    expect(svc.json).toMatchObject({ key: '/apisix/services/s3', value: { id: 's3', upstream_id: 'u3' } });
    // Schema defaults are filled in, as in APISIX's data plane.
    expect(svc.json.value.plugins['limit-count']).toMatchObject({ count: 2, time_window: 60, policy: 'local', rejected_code: 503 });
    expect((await ctl('/v1/services')).json.map((e: any) => e.value.id)).toContain('s3');

    await gw.put('/upstreams/u3', { nodes: [{ host: '127.0.0.3', port: 81, weight: 1 }], type: 'roundrobin' });
    expect((await ctl('/v1/upstream/u3')).json.value.nodes).toEqual([{ host: '127.0.0.3', port: 81, weight: 1, priority: 0 }]);

    await del('/services/s3');
    await del('/upstreams/u3');
    expect(await ctl('/v1/service/s3')).toMatchObject({ status: 404, json: { error_msg: 'service[s3] not found' } });
    expect(await ctl('/v1/upstream/u3')).toMatchObject({ status: 404, json: { error_msg: 'upstream[u3] not found' } });
    expect((await ctl('/v1/upstream/a/b')).status).toBe(404);
  });

  it('plugin metadata', async () => {
    await gw.put('/plugin_metadata/file-logger', { log_format: { host: '$host' } });
    const all = await ctl('/v1/plugin_metadatas');
    expect(all.status).toBe(200);
    expect(all.json).toContainEqual({ id: 'file-logger', log_format: { host: '$host' } });
    expect((await ctl('/v1/plugin_metadata/file-logger')).json).toEqual({ id: 'file-logger', log_format: { host: '$host' } });
    await del('/plugin_metadata/file-logger');
    expect(await ctl('/v1/plugin_metadata/file-logger')).toMatchObject({
      status: 404,
      json: { error_msg: 'plugin metadata[file-logger] not found' },
    });
    expect((await ctl('/v1/plugin_metadatas')).json).toEqual([]);
  });
});

describe('schema', () => {
  it('main schemas and the enabled plugins with theirs', async () => {
    const r = await ctl('/v1/schema');
    expect(r.status).toBe(200);
    const main = r.json.main;
    for (const k of ['consumer', 'consumer_group', 'global_rule', 'plugin_config', 'plugins', 'proto', 'route', 'service', 'ssl', 'stream_route', 'upstream']) {
      expect(main[k], k).toBeTypeOf('object');
    }
    expect(main.route.properties.uri).toBeDefined();
    expect(main.upstream_hash_header_schema.type).toBe('string');
    expect(main.upstream_hash_vars_schema.pattern).toContain('remote_addr');
    expect(r.json.plugins['limit-count']).toMatchObject({ priority: 1002, version: 0.5 });
    expect(r.json.plugins['limit-count'].schema.properties._meta).toBeDefined();
    expect(r.json.plugins['basic-auth']).toMatchObject({ type: 'auth' });
    expect(r.json.plugins['basic-auth'].consumer_schema).toBeTypeOf('object');
    expect(r.json.plugins['file-logger'].metadata_schema).toBeTypeOf('object');
    expect(Object.keys(r.json.stream_plugins)).toContain('mqtt-proxy');
  });
});

describe('healthcheck as HTML', () => {
  it('renders the checkers as a table for ?format=html and for browsers', async () => {
    const b = await httpBackend('html');
    backends.push(b);
    const active = { http_path: '/health', timeout: 1, healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, http_failures: 1 } };
    await gw.put('/upstreams/hc', { nodes: { [`127.0.0.1:${b.port}`]: 1 }, checks: { active } });
    await waitFor(async () => (await ctl('/v1/healthcheck/upstreams/hc')).json?.nodes?.[0]?.status === 'healthy', 10_000, 50);

    const page = await ctl('/v1/healthcheck?format=html');
    expect(page.status).toBe(200);
    expect(page.type).toBe('text/html; charset=utf-8');
    expect(page.text).toContain('<title>APISIX upstream check status</title>');
    expect(page.text).toMatch(new RegExp(`<td>/apisix/upstreams/hc</td>\\s*<td>http</td>\\s*<td>127\\.0\\.0\\.1:${b.port}</td>\\s*<td>healthy</td>`));
    const one = await ctl('/v1/healthcheck/upstreams/hc', { headers: { accept: 'text/html,application/xhtml+xml' } });
    expect(one.type).toBe('text/html; charset=utf-8');
    expect(one.text).toContain(`127.0.0.1:${b.port}`);
    // Scripts (curl, fetch) still get JSON.
    expect((await ctl('/v1/healthcheck/upstreams/hc')).json.name).toBe('/apisix/upstreams/hc');
    await del('/upstreams/hc');
  });

  it('escapes every cell', () => {
    const html = healthHtml([
      {
        name: '/apisix/upstreams/<script>alert("x")</script>',
        type: 'http&',
        nodes: [{ ip: "1.2.3.4'", port: 80, hostname: 'h', status: 'unhealthy', counter: { success: 1, http_failure: 2, tcp_failure: 3, timeout_failure: 4 } }],
      },
    ]);
    expect(html).not.toContain('<script>');
    expect(html).toContain('<td>/apisix/upstreams/&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</td>');
    expect(html).toContain('<td>http&amp;</td>');
    expect(html).toContain('<td>1.2.3.4&#39;:80</td>');
    expect(html).toContain('<tr bgcolor="#FF0000">');
  });
});

describe('methods', () => {
  it('GET/HEAD everywhere, PUT only on /v1/plugins/reload, bounded PUT bodies', async () => {
    expect((await ctl('/v1/routes', { method: 'HEAD' })).status).toBe(200);
    expect((await ctl('/v1/routes', { method: 'PUT' })).status).toBe(405);
    expect((await ctl('/v1/gc', { method: 'POST' })).status).toBe(405);
    expect((await ctl('/v1/plugins/reload')).status).toBe(405);
    expect((await ctl('/v1/nope')).status).toBe(404);
    const big = await ctl('/v1/plugins/reload', { method: 'PUT', body: Buffer.alloc(200 * 1024, 97) });
    expect(big.status).toBe(413);
  });
});

describe('discovery dump', () => {
  it('lists the nodes each DNS service resolved to', async () => {
    expect(await ctl('/v1/discovery/consul/dump')).toMatchObject({ status: 404 });
    await gw.put('/routes/dns', { uri: '/dns', upstream: { discovery_type: 'dns', service_name: 'svc.control.test:8080', type: 'roundrobin' } });
    await waitFor(async () => ((await ctl('/v1/discovery/dns/dump')).json?.services?.['svc.control.test:8080'] ?? []).length > 0, 10_000, 50);
    const dump = (await ctl('/v1/discovery/dns/dump')).json;
    expect(dump.config.servers).toEqual([`127.0.0.1:${dns.port}`]);
    expect(dump.services['svc.control.test:8080']).toEqual([{ host: '127.0.0.7', port: 8080, weight: 1, priority: 0 }]);
    // The upstream is gone: nothing watches the service any more.
    await del('/routes/dns');
    await waitFor(async () => (await ctl('/v1/discovery/dns/dump')).json.services['svc.control.test:8080'] === undefined, 10_000, 50);
  });
});

describe('plugins reload', () => {
  it('re-reads the plugin list from config.yaml', async () => {
    const file = path.join(gw.dir, 'config.yaml');
    const original = await readFile(file, 'utf8');
    const conf = parse(original) as Record<string, unknown>;
    const names = gw.gw.plugins.all('http').map((d) => d.name);
    expect(names).toContain('uri-blocker');
    conf.plugins = names.filter((n) => n !== 'uri-blocker');
    await writeFile(file, stringify(conf));
    try {
      const r = await ctl('/v1/plugins/reload', { method: 'PUT', body: '{}' });
      expect(r).toMatchObject({ status: 200, text: 'done' });
      await waitFor(async () => (await ctl('/v1/schema')).json.plugins['uri-blocker'] === undefined, 10_000, 50);
      expect(gw.gw.plugins.get('uri-blocker')).toBeUndefined();
    } finally {
      await writeFile(file, original);
      await ctl('/v1/plugins/reload', { method: 'PUT' });
      await waitFor(async () => (await ctl('/v1/schema')).json.plugins['uri-blocker'] !== undefined, 10_000, 50);
    }
  });
});
