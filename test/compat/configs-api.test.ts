// API-driven standalone (APISIX admin/standalone.lua) and POST /configs/validate (admin/config_validate.lua)
// against the real Admin API server on a real writable FileStore. Expectations follow APISIX's source and
// t/admin/standalone.spec.ts: digest header rules, per-collection conf_version, 202/204/400 answers.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { FileStore } from '../../src/config/store-file.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startAdmin, type AdminHarness } from '../admin/harness.ts';
import { tempDir } from '../helpers/proc.ts';

let h: AdminHarness;
let store: FileStore;
let file: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  const tmp = await tempDir('swy-configs-');
  cleanup = tmp.cleanup;
  file = `${tmp.dir}/apisix.yaml`;
  store = new FileStore({ path: file, logger: silentLogger, writable: true });
  await store.start();
  h = await startAdmin({ store });
});
afterAll(async () => {
  await h.close();
  await store.close();
  await cleanup();
});

const UP = { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } };
const put = (body: unknown, headers: Record<string, string> = {}) =>
  h.api('PUT', '/apisix/admin/configs', { rawBody: typeof body === 'string' ? body : JSON.stringify(body), headers });

describe('/apisix/admin/configs', () => {
  it('dumps an empty configuration with every conf_version at 0 and no metadata headers', async () => {
    const r = await h.api('GET', '/apisix/admin/configs');
    expect(r.status).toBe(200);
    expect(r.json.routes_conf_version).toBe(0);
    expect(r.json.upstreams_conf_version).toBe(0);
    expect(r.json.routes).toBeUndefined();
    expect(r.headers.get('x-digest')).toBeNull();
    const head = await h.api('HEAD', '/apisix/admin/configs');
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
  });

  it('refuses a PUT without X-Digest, with an empty body, or with an invalid object', async () => {
    expect((await put({ routes: [] })).json).toEqual({ error_msg: 'missing digest header' });
    const empty = await put('', { 'X-Digest': 'd0' });
    expect([empty.status, empty.json]).toEqual([400, { error_msg: 'invalid request body: empty request body' }]);
    const bad = await put({ routes: [{ uri: 1 }] }, { 'X-Digest': 'd0' });
    expect(bad.status).toBe(400);
    expect(bad.json.error_msg).toMatch(/^invalid configuration: property "uri" validation failed/);
    const dup = await put({ upstreams: [{ id: 'u', ...UP }, { id: 'u', ...UP }] }, { 'X-Digest': 'd0' });
    expect(dup.json).toEqual({ error_msg: 'found duplicate id u in upstreams' });
    const proto = await put('{"routes":[],"__proto__":{"x":1}}', { 'X-Digest': 'd0' });
    expect(proto.status).toBe(400);
    expect(proto.json.error_msg).toMatch(/forbidden key "__proto__"/);
  });

  it('applies a PUT (202, X-Digest, X-Last-Modified), numbers objects without id, persists, and 204s the same digest', async () => {
    const body = {
      routes: [{ uri: '/hello', upstream_id: 'u1', modifiedIndex: 3 }, { uri: '/two', upstream: UP }],
      upstreams: [{ id: 'u1', ...UP }],
      consumers: [{ username: 'jack' }, { id: 'jack/credentials/c1', plugins: { 'key-auth': { key: 'k1' } } }],
    };
    const r = await put(body, { 'X-Digest': 'digest-1' });
    expect(r.status).toBe(202);
    expect(r.headers.get('x-digest')).toBe('digest-1');
    const lm = Number(r.headers.get('x-last-modified'));
    expect(Math.abs(lm - Date.now() / 1000)).toBeLessThan(60);
    expect(store.get('routes', 'r1')).toBeUndefined();
    expect(store.get('routes', 'arr_1')?.value).toMatchObject({ id: 'arr_1', uri: '/hello', upstream_id: 'u1' });
    expect(store.get('routes', 'arr_1')?.value.modifiedIndex).toBeUndefined();
    expect(store.get('credentials', 'jack/credentials/c1')).toBeDefined();

    const dump = await h.api('GET', '/apisix/admin/configs');
    expect(dump.headers.get('x-digest')).toBe('digest-1');
    expect(dump.json.routes_conf_version).toBe(1);
    expect(dump.json.routes.map((x: { id: string }) => x.id)).toEqual(['arr_1', 'arr_2']);
    expect(dump.json.consumers.map((x: { username?: string; id?: string }) => x.username ?? x.id)).toEqual(['jack', 'jack/credentials/c1']);
    const yaml = await h.api('GET', '/apisix/admin/configs', { headers: { Accept: 'application/yaml' } });
    expect(yaml.headers.get('content-type')).toBe('application/yaml');
    expect(parse(yaml.text).upstreams[0].id).toBe('u1');
    // The file is the store: the configuration survives a restart.
    const onDisk = parse((await readFile(file, 'utf8')).replace(/#END\s*$/, ''));
    expect(onDisk.routes_conf_version).toBe(1);
    expect(onDisk.upstreams[0].id).toBe('u1');

    const same = await put({ routes: [] }, { 'X-Digest': 'digest-1' });
    expect(same.status).toBe(204);
    expect(store.get('routes', 'arr_1')).toBeDefined();
    const head = await h.api('HEAD', '/apisix/admin/configs');
    expect(head.headers.get('x-digest')).toBe('digest-1');
    expect(head.headers.get('x-last-modified')).toBe(String(lm));
  });

  it('keeps a collection whose conf_version is unchanged, replaces one that moved, refuses a lower one', async () => {
    const low = await put({ routes_conf_version: 0, routes: [] }, { 'X-Digest': 'digest-2' });
    expect([low.status, low.json]).toEqual([400, { error_msg: 'routes_conf_version must be greater than or equal to (1)' }]);
    const r = await put(
      { routes_conf_version: 1, upstreams_conf_version: 10, upstreams: [{ id: 'u2', ...UP }] },
      { 'X-Digest': 'digest-2', 'Content-Type': 'application/json' },
    );
    expect(r.status).toBe(202);
    expect(store.get('routes', 'arr_1')).toBeDefined();
    expect(store.get('upstreams', 'u1')).toBeUndefined();
    expect(store.get('upstreams', 'u2')).toBeDefined();
    // Collections not named move to current + 1 and are emptied, as APISIX does.
    expect(store.get('consumers', 'jack')).toBeUndefined();
    const dump = await h.api('GET', '/apisix/admin/configs');
    expect([dump.json.routes_conf_version, dump.json.upstreams_conf_version, dump.json.consumers_conf_version]).toEqual([1, 10, 2]);
  });

  it('takes YAML bodies', async () => {
    const text = 'routes:\n  - id: y1\n    uri: /y\n    upstream:\n      nodes:\n        "127.0.0.1:1980": 1\n';
    const r = await put(text, { 'X-Digest': 'digest-3', 'Content-Type': 'application/yaml' });
    expect(r.status).toBe(202);
    expect(store.get('routes', 'y1')?.value.uri).toBe('/y');
    const bad = await put('- just\n- a list\n', { 'X-Digest': 'digest-4', 'Content-Type': 'application/yaml' });
    expect(bad.status).toBe(400);
  });
});

describe('POST /apisix/admin/configs/validate', () => {
  it('answers 200 {} for a valid configuration and changes nothing', async () => {
    const before = store.revision;
    const r = await h.api('POST', '/apisix/admin/configs/validate', { body: { routes: [{ id: 'v', uri: '/v', upstream: UP }] } });
    expect([r.status, r.json]).toEqual([200, {}]);
    expect(store.revision).toBe(before);
    expect(store.get('routes', 'v')).toBeUndefined();
  });

  it('collects every error with resource_type, resource_id and a 0-based index', async () => {
    const r = await h.api('POST', '/apisix/admin/configs/validate', {
      body: {
        routes_conf_version: 'x',
        routes: [{ id: 'ok', uri: '/ok', upstream: UP }, { id: 'bad', uri: 1 }],
        upstreams: [{ id: 'a', nodes: [{ host: '::1', port: 80, weight: 1 }] }, { id: 'a', ...UP }],
        secrets: [{ id: 'plain', uri: 'http://127.0.0.1:8200', prefix: 'p', token: 't' }],
        consumers: [{ username: 'jack' }, { username: 'jack' }],
      },
    });
    expect(r.status).toBe(400);
    expect(r.json.error_msg).toBe('Configuration validation failed');
    const errs = r.json.errors as { resource_type: string; resource_id?: string; index?: number; error: string }[];
    expect(errs).toContainEqual({ resource_type: 'routes', error: 'routes_conf_version must be a number, got string' });
    expect(errs.find((e) => e.resource_id === 'bad')).toMatchObject({ resource_type: 'routes', index: 1 });
    expect(errs).toContainEqual({ resource_type: 'upstreams', resource_id: 'a', index: 0, error: "invalid configuration: IPv6 address must be enclosed with '[' and ']'" });
    expect(errs).toContainEqual({ resource_type: 'upstreams', resource_id: 'a', index: 1, error: 'found duplicate id a in upstreams' });
    expect(errs).toContainEqual({ resource_type: 'secrets', resource_id: 'plain', index: 0, error: 'invalid secret id: plain' });
    expect(errs).toContainEqual({ resource_type: 'consumers', resource_id: 'jack', index: 1, error: 'found duplicate username jack in consumers' });
  });

  it('reports a body that does not parse', async () => {
    const r = await h.api('POST', '/apisix/admin/configs/validate', { rawBody: '{"routes": [' });
    expect(r.status).toBe(400);
    expect(r.json.error_msg).toMatch(/^invalid request body: /);
  });
});
