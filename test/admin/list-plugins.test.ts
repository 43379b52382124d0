// List filters and paging, /plugins and /schema endpoints, on the file backend.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/config/store-file.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { tempDir } from '../helpers/proc.ts';
import { startAdmin, UPSTREAM, VIEWER_KEY, type AdminHarness } from './harness.ts';

let store: FileStore;
let h: AdminHarness;
let cleanup: () => Promise<void> = async () => undefined;

beforeAll(async () => {
  const tmp = await tempDir('swy-admin-list-');
  cleanup = tmp.cleanup;
  store = new FileStore({ path: `${tmp.dir}/apisix.yaml`, logger: silentLogger, writable: true });
  await store.start();
  h = await startAdmin({ store });
  await h.api('PUT', '/apisix/admin/upstreams/u1', { body: UPSTREAM });
  // Keys sort lexicographically (r10 < r2); createdIndex follows creation order.
  for (let i = 1; i <= 25; i++) {
    const body: Record<string, unknown> = {
      uri: i % 2 === 0 ? `/even/${i}` : undefined,
      uris: i % 2 === 1 ? [`/odd/${i}`, '/shared'] : undefined,
      name: `route-${i}`,
      upstream_id: i <= 3 ? 'u1' : undefined,
      upstream: i <= 3 ? undefined : UPSTREAM,
      labels: i % 5 === 0 ? { team: 'five' } : undefined,
    };
    const r = await h.api('PUT', `/apisix/admin/routes/r${i}`, { body: JSON.parse(JSON.stringify(body)) });
    if (r.status !== 201) throw new Error(r.text);
  }
});

afterAll(async () => {
  await h?.close();
  await store?.close();
  await cleanup();
});

describe('list filters and paging', () => {
  it('filters by name regex, label, uri and filter=', async () => {
    const name = await h.api('GET', '/apisix/admin/routes?name=' + encodeURIComponent('^route-1\\d$'));
    expect(name.json.total).toBe(10);
    const label = await h.api('GET', '/apisix/admin/routes?label=team');
    expect(label.json.list.map((n: any) => n.value.id).sort()).toEqual(['r10', 'r15', 'r20', 'r25', 'r5']);
    const uri = await h.api('GET', '/apisix/admin/routes?uri=' + encodeURIComponent('^/even/2'));
    expect(uri.json.list.map((n: any) => n.value.id).sort()).toEqual(['r2', 'r20', 'r22', 'r24']);
    const uris = await h.api('GET', '/apisix/admin/routes?uri=/shared');
    expect(uris.json.total).toBe(13);
    const both = await h.api('GET', '/apisix/admin/routes?uri=/shared&label=team');
    expect(both.json.list.map((n: any) => n.value.id).sort()).toEqual(['r15', 'r25', 'r5']);
    const filter = await h.api('GET', '/apisix/admin/routes?filter=' + encodeURIComponent('upstream_id=u1'));
    expect(filter.json.list.map((n: any) => n.value.id).sort()).toEqual(['r1', 'r2', 'r3']);
    const ignored = await h.api('GET', '/apisix/admin/routes?filter=' + encodeURIComponent('uri=/even/2'));
    expect(ignored.json.total).toBe(25);
    const badRe = await h.api('GET', '/apisix/admin/routes?name=(');
    expect(badRe.status).toBe(400);
  });

  it('pages by createdIndex with the total before paging', async () => {
    const p1 = await h.api('GET', '/apisix/admin/routes?page=1&page_size=10');
    expect(p1.json.total).toBe(25);
    expect(p1.json.list.map((n: any) => n.value.id)).toEqual(Array.from({ length: 10 }, (_, i) => `r${i + 1}`));
    const p3 = await h.api('GET', '/apisix/admin/routes?page=3&page_size=10');
    expect(p3.json.list.map((n: any) => n.value.id)).toEqual(['r21', 'r22', 'r23', 'r24', 'r25']);
    const p0 = await h.api('GET', '/apisix/admin/routes?page=0&page_size=10');
    expect(p0.json.list[0].value.id).toBe('r1');
    const filtered = await h.api('GET', '/apisix/admin/routes?label=team&page=1&page_size=10');
    expect(filtered.json).toMatchObject({ total: 5 });
    const bad = await h.api('GET', '/apisix/admin/routes?page=1&page_size=5');
    expect(bad.status).toBe(400);
    expect(bad.text).toBe('page_size must be between 10 and 500');
    const onlyPage = await h.api('GET', '/apisix/admin/routes?page=2');
    expect(onlyPage.json.list.length).toBe(25);
  });
});

describe('plugins endpoints', () => {
  it('lists enabled plugins by priority, per subsystem', async () => {
    const http = await h.api('GET', '/apisix/admin/plugins/list');
    expect(http.json).toEqual(['key-auth', 'limit-count', 'traffic-split', 'grpc-transcode', 'http-logger']);
    const stream = await h.api('GET', '/apisix/admin/plugins/list?subsystem=stream');
    expect(stream.json).toEqual(['mqtt-proxy']);
    const bad = await h.api('GET', '/apisix/admin/plugins/list?subsystem=udp');
    expect(bad.status).toBe(400);
  });

  it('answers one plugin schema with _meta, or 404', async () => {
    const s = await h.api('GET', '/apisix/admin/plugins/limit-count');
    expect(s.status).toBe(200);
    expect(s.json.properties._meta).toBeDefined();
    expect(s.json.required).toEqual(['count', 'time_window']);
    const consumer = await h.api('GET', '/apisix/admin/plugins/key-auth?schema_type=consumer');
    expect(consumer.json.required).toEqual(['key']);
    const missing = await h.api('GET', '/apisix/admin/plugins/nope');
    expect(missing).toMatchObject({ status: 404, json: { error_msg: 'plugin not found in subsystem http' } });
    const streamOnly = await h.api('GET', '/apisix/admin/plugins/mqtt-proxy');
    expect(streamOnly.status).toBe(404);
    expect((await h.api('GET', '/apisix/admin/plugins/mqtt-proxy?subsystem=stream')).status).toBe(200);
  });

  it('dumps all plugins with ?all=true', async () => {
    const all = await h.api('GET', '/apisix/admin/plugins?all=true');
    expect(Object.keys(all.json)).toContain('key-auth');
    expect(all.json['key-auth']).toMatchObject({ priority: 2500, type: 'auth', version: '0.1' });
    expect(all.json['key-auth'].consumer_schema).toBeDefined();
  });

  it('reloads plugins on PUT only, for admins only', async () => {
    const before = h.reloads;
    const r = await h.api('PUT', '/apisix/admin/plugins/reload');
    expect(r.status).toBe(200);
    expect(h.reloads).toBe(before + 1);
    const get = await h.api('GET', '/apisix/admin/plugins/reload');
    expect(get.status).toBe(405);
    const viewer = await h.api('PUT', '/apisix/admin/plugins/reload', { key: VIEWER_KEY });
    expect(viewer.status).toBe(401);
    expect(h.reloads).toBe(before + 1);
  });
});

describe('schema endpoints', () => {
  it('serves core and plugin schemas', async () => {
    const route = await h.api('GET', '/apisix/admin/schema/route');
    expect(route.status).toBe(200);
    expect(route.json.properties.uri).toBeDefined();
    const unknown = await h.api('GET', '/apisix/admin/schema/nope');
    expect(unknown).toMatchObject({ status: 400, json: { error_msg: 'not found schema: nope' } });
    const plugin = await h.api('GET', '/apisix/admin/schema/plugins/limit-count');
    expect(plugin.json.properties._meta).toBeDefined();
  });

  it('validates without writing', async () => {
    const ok = await h.api('POST', '/apisix/admin/schema/validate/routes', { body: { uri: '/v', upstream: UPSTREAM } });
    expect(ok.status).toBe(200);
    expect(ok.text).toBe('');
    const bad = await h.api('POST', '/apisix/admin/schema/validate/routes', { body: { uri: 1, upstream: UPSTREAM } });
    expect(bad.status).toBe(400);
    expect(bad.json.error_msg).toMatch(/uri/);
    const kind = await h.api('POST', '/apisix/admin/schema/validate/nope', { body: {} });
    expect(kind.status).toBe(404);
  });
});
