// CRUD of every resource kind against a real etcd: envelopes, status codes, id rules, timestamps, ttl,
// method matrix.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEtcdStore } from '../../src/config/store-etcd.ts';
import type { ConfigStore } from '../../src/config/store.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startEtcd, type EtcdPeer } from '../helpers/etcd.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startAdmin, UPSTREAM, type AdminHarness } from './harness.ts';

let etcd: EtcdPeer;
let store: ConfigStore;
let h: AdminHarness;
let cert = '';
let key = '';
let cleanup: () => Promise<void> = async () => undefined;

beforeAll(async () => {
  const tmp = await tempDir('swy-admin-crud-');
  cleanup = tmp.cleanup;
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=test.com',
    '-keyout', `${tmp.dir}/k.pem`, '-out', `${tmp.dir}/c.pem`,
  ], { stdio: 'ignore', timeout: 20_000 });
  cert = readFileSync(`${tmp.dir}/c.pem`, 'utf8');
  key = readFileSync(`${tmp.dir}/k.pem`, 'utf8');
  etcd = await startEtcd();
  store = await createEtcdStore({ hosts: [etcd.endpoint], prefix: '/apisix', timeoutSec: 5, logger: silentLogger });
  h = await startAdmin({ store });
});

afterAll(async () => {
  await h?.close();
  await store?.close();
  await etcd?.stop();
  await cleanup();
});

describe('routes envelopes and id rules', () => {
  it('PUT creates (201), replaces (200), keeps create_time, stores no defaults', async () => {
    const r1 = await h.api('PUT', '/apisix/admin/routes/1', { body: { uri: '/a', upstream: UPSTREAM } });
    expect(r1.status).toBe(201);
    expect(r1.headers.get('content-type')).toBe('application/json');
    expect(r1.headers.get('server')).toBe('APISIX/3.13.0');
    expect(r1.headers.get('x-api-version')).toBe('v3');
    expect(Object.keys(r1.json).sort()).toEqual(['key', 'value']);
    expect(r1.json.key).toBe('/apisix/routes/1');
    const v = r1.json.value;
    expect(v.id).toBe('1');
    expect(v.uri).toBe('/a');
    expect(typeof v.create_time).toBe('number');
    expect(v.update_time).toBe(v.create_time);
    expect(v.priority).toBeUndefined();
    expect(v.status).toBeUndefined();
    expect(v.upstream).toEqual(UPSTREAM);

    const r2 = await h.api('PUT', '/apisix/admin/routes/1', { body: { uri: '/b', upstream: UPSTREAM } });
    expect(r2.status).toBe(200);
    expect(r2.json.value.create_time).toBe(v.create_time);
    expect(r2.json.value.uri).toBe('/b');

    const g = await h.api('GET', '/apisix/admin/routes/1');
    expect(g.status).toBe(200);
    expect(Object.keys(g.json).sort()).toEqual(['createdIndex', 'key', 'modifiedIndex', 'value']);
    expect(g.json.modifiedIndex).toBeGreaterThan(g.json.createdIndex);
    expect(g.json.value.uri).toBe('/b');
  });

  it('keeps an integer body id, stores path ids as strings', async () => {
    const r = await h.api('PUT', '/apisix/admin/routes', { body: { id: 5, uri: '/five', upstream: UPSTREAM } });
    expect(r.status).toBe(201);
    expect(r.json.key).toBe('/apisix/routes/5');
    expect(r.json.value.id).toBe(5);
    const p = await h.api('PUT', '/apisix/admin/routes/6', { body: { id: 6, uri: '/six', upstream: UPSTREAM } });
    expect(p.json.value.id).toBe('6');
  });

  it('refuses bad ids and client timestamps without writing', async () => {
    const wrong = await h.api('PUT', '/apisix/admin/routes/7', { body: { id: 8, uri: '/x', upstream: UPSTREAM } });
    expect(wrong).toMatchObject({ status: 400, json: { error_msg: 'wrong route id' } });
    const missing = await h.api('PUT', '/apisix/admin/routes', { body: { uri: '/x', upstream: UPSTREAM } });
    expect(missing.json).toEqual({ error_msg: 'missing route id' });
    const post = await h.api('POST', '/apisix/admin/routes', { body: { id: 9, uri: '/x', upstream: UPSTREAM } });
    expect(post).toMatchObject({ status: 400, json: { error_msg: 'wrong route id, do not need it' } });
    const ts = await h.api('PUT', '/apisix/admin/routes/7', { body: { uri: '/x', upstream: UPSTREAM, create_time: 1 } });
    expect(ts).toMatchObject({ status: 400, json: { error_msg: 'the property is forbidden:  create_time' } });
    const uts = await h.api('PUT', '/apisix/admin/routes/7', { body: { uri: '/x', upstream: { ...UPSTREAM, update_time: 1 } } });
    expect(uts.json.error_msg).toBe('the property is forbidden:  upstream.update_time');
    const empty = await h.api('PUT', '/apisix/admin/routes/7');
    expect(empty).toMatchObject({ status: 400, json: { error_msg: 'missing configurations' } });
    const schema = await h.api('PUT', '/apisix/admin/routes/7', { body: { uri: 1, upstream: UPSTREAM } });
    expect(schema.status).toBe(400);
    expect(schema.json.error_msg).toMatch(/^invalid configuration: /);
    expect((await h.api('GET', '/apisix/admin/routes/7')).status).toBe(404);
    expect((await h.api('GET', '/apisix/admin/routes/9')).status).toBe(404);
  });

  it('POST generates monotonic 20-digit ids', async () => {
    const a = await h.api('POST', '/apisix/admin/routes', { body: { uri: '/p1', upstream: UPSTREAM } });
    const b = await h.api('POST', '/apisix/admin/routes', { body: { uri: '/p2', upstream: UPSTREAM } });
    expect(a.status).toBe(201);
    expect(a.json.value.id).toMatch(/^\d{20}$/);
    expect(a.json.key).toBe(`/apisix/routes/${a.json.value.id}`);
    expect(b.json.value.id > a.json.value.id).toBe(true);
    expect((await h.api('GET', `/apisix/admin/routes/${a.json.value.id}`)).json.value.uri).toBe('/p1');
  });

  it('DELETE answers {deleted:"1",key}; missing keys give 404 Key not found', async () => {
    await h.api('PUT', '/apisix/admin/routes/del', { body: { uri: '/d', upstream: UPSTREAM } });
    const d = await h.api('DELETE', '/apisix/admin/routes/del');
    expect(d).toMatchObject({ status: 200, json: { deleted: '1', key: '/apisix/routes/del' } });
    const again = await h.api('DELETE', '/apisix/admin/routes/del');
    expect(again).toMatchObject({ status: 404, json: { message: 'Key not found' } });
    expect((await h.api('GET', '/apisix/admin/routes/del')).json).toEqual({ message: 'Key not found' });
  });

  it('lists as {list:[envelope],total}', async () => {
    const l = await h.api('GET', '/apisix/admin/routes');
    expect(l.status).toBe(200);
    expect(l.json.total).toBe(l.json.list.length);
    expect(l.json.list[0]).toHaveProperty('createdIndex');
    expect(l.json.list.map((n: any) => n.key)).toContain('/apisix/routes/1');
    const empty = await h.api('GET', '/apisix/admin/protos');
    expect(empty.json).toEqual({ list: [], total: 0 });
  });
});

describe('method matrix and dispatch', () => {
  it('answers 405 for unsupported methods and 404 for unknown resources', async () => {
    const cases: [string, string, string][] = [
      ['POST', '/apisix/admin/consumers', 'not supported `POST` method for consumer'],
      ['PATCH', '/apisix/admin/consumers/jack', 'not supported `PATCH` method for consumer'],
      ['POST', '/apisix/admin/global_rules', 'not supported `POST` method for global rule'],
      ['POST', '/apisix/admin/plugin_configs', 'not supported `POST` method for plugin config'],
      ['POST', '/apisix/admin/consumer_groups', 'not supported `POST` method for consumer group'],
      ['PATCH', '/apisix/admin/stream_routes/1', 'not supported `PATCH` method for stream route'],
      ['PATCH', '/apisix/admin/protos/1', 'not supported `PATCH` method for proto'],
      ['POST', '/apisix/admin/plugin_metadata', 'not supported `POST` method for plugin metadata'],
      ['POST', '/apisix/admin/consumers/jack/credentials', 'not supported `POST` method for credential'],
    ];
    for (const [m, p, msg] of cases) {
      const r = await h.api(m, p, { body: {} });
      expect(r.status, `${m} ${p}`).toBe(405);
      expect(r.json).toEqual({ error_msg: msg });
    }
    const unknown = await h.api('GET', '/apisix/admin/nope');
    expect(unknown).toMatchObject({ status: 404, json: { error_msg: 'Unsupported resource type: nope' } });
    const head = await h.api('HEAD', '/apisix/admin', { key: null });
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
  });

  it('validates ?ttl= and expires the object', async () => {
    const bad = await h.api('PUT', '/apisix/admin/routes/ttl?ttl=abc', { body: { uri: '/t', upstream: UPSTREAM } });
    expect(bad).toMatchObject({ status: 400, json: { error_msg: 'invalid argument ttl: should be a number' } });
    const ok = await h.api('PUT', '/apisix/admin/routes/ttl?ttl=1', { body: { uri: '/t', upstream: UPSTREAM } });
    expect(ok.status).toBe(201);
    await waitFor(async () => (await h.api('GET', '/apisix/admin/routes/ttl')).status === 404, 15_000, 200);
  });
});

describe('each kind', () => {
  it('services, upstreams, plugin_configs, consumer_groups, global_rules, protos', async () => {
    const bodies: [string, object][] = [
      ['services/s1', { upstream: UPSTREAM, name: 'svc' }],
      ['upstreams/u1', UPSTREAM],
      ['plugin_configs/pc1', { plugins: { 'limit-count': { count: 1, time_window: 60 } } }],
      ['consumer_groups/g1', { plugins: { 'limit-count': { count: 1, time_window: 60 } } }],
      ['global_rules/gr1', { plugins: { 'limit-count': { count: 9, time_window: 60 } } }],
      ['protos/p1', { content: 'syntax = "proto3";\npackage x;\nmessage A { string a = 1; }' }],
    ];
    for (const [path, body] of bodies) {
      const r = await h.api('PUT', `/apisix/admin/${path}`, { body });
      expect(r.status, `${path}: ${r.text}`).toBe(201);
      const [dir, id] = path.split('/');
      expect(r.json.key).toBe(`/apisix/${dir}/${id}`);
      expect(r.json.value.id).toBe(id);
      const g = await h.api('GET', `/apisix/admin/${path}`);
      expect(g.status).toBe(200);
    }
    const post = await h.api('POST', '/apisix/admin/upstreams', { body: UPSTREAM });
    expect(post.status).toBe(201);
    const dup = await h.api('PUT', '/apisix/admin/global_rules/gr2', {
      body: { plugins: { 'limit-count': { count: 1, time_window: 60 } } },
    });
    expect(dup).toMatchObject({ status: 400, json: { error_msg: "plugin 'limit-count' already exists in global rule with id 'gr1'" } });
    const self = await h.api('PUT', '/apisix/admin/global_rules/gr1', {
      body: { plugins: { 'limit-count': { count: 3, time_window: 60 } } },
    });
    expect(self.status).toBe(200);
  });

  it('consumers are keyed by username; DELETE removes credentials', async () => {
    const c = await h.api('PUT', '/apisix/admin/consumers', { body: { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } } });
    expect(c.status).toBe(201);
    expect(c.json.key).toBe('/apisix/consumers/jack');
    expect(c.json.value.id).toBeUndefined();
    const byPath = await h.api('PUT', '/apisix/admin/consumers/jack', { body: { username: 'jack' } });
    expect(byPath.status).toBe(200);
    const wrong = await h.api('PUT', '/apisix/admin/consumers/jack', { body: { username: 'rose' } });
    expect(wrong).toMatchObject({ status: 400, json: { error_msg: 'wrong username' } });
    await h.api('PUT', '/apisix/admin/consumers/rose', { body: { username: 'rose', plugins: { 'key-auth': { key: 'rose-key' } } } });
    const dupKey = await h.api('PUT', '/apisix/admin/consumers/tom', { body: { username: 'tom', plugins: { 'key-auth': { key: 'rose-key' } } } });
    expect(dupKey).toMatchObject({ status: 400, json: { error_msg: 'duplicate key found with consumer: rose' } });

    const noParent = await h.api('PUT', '/apisix/admin/consumers/nobody/credentials/c1', { body: { plugins: { 'key-auth': { key: 'k' } } } });
    expect(noParent).toMatchObject({ status: 404, json: { error_msg: 'consumer not found' } });
    const cred = await h.api('PUT', '/apisix/admin/consumers/jack/credentials/c1', { body: { plugins: { 'key-auth': { key: 'jack-cred' } } } });
    expect(cred.status).toBe(201);
    expect(cred.json.key).toBe('/apisix/consumers/jack/credentials/c1');
    expect(cred.json.value.id).toBe('c1');
    const nonAuth = await h.api('PUT', '/apisix/admin/consumers/jack/credentials/c2', {
      body: { plugins: { 'limit-count': { count: 1, time_window: 1 } } },
    });
    expect(nonAuth.status).toBe(400);
    const credDup = await h.api('PUT', '/apisix/admin/consumers/jack/credentials/c3', { body: { plugins: { 'key-auth': { key: 'rose-key' } } } });
    expect(credDup.json.error_msg).toBe('duplicate key found with consumer: rose');
    const list = await h.api('GET', '/apisix/admin/consumers/jack/credentials');
    expect(list.json.total).toBe(1);
    expect(list.json.list[0].key).toBe('/apisix/consumers/jack/credentials/c1');
    const consumers = await h.api('GET', '/apisix/admin/consumers');
    expect(consumers.json.list.map((n: any) => n.key).sort()).toEqual(['/apisix/consumers/jack', '/apisix/consumers/rose']);

    const del = await h.api('DELETE', '/apisix/admin/consumers/jack');
    expect(del.json).toEqual({ deleted: '1', key: '/apisix/consumers/jack' });
    expect((await h.api('GET', '/apisix/admin/consumers/jack/credentials/c1')).status).toBe(404);
    const gone = await h.api('GET', '/apisix/admin/consumers/jack/credentials');
    expect([gone.status, gone.json]).toEqual([404, { message: 'Key not found' }]);
  });

  it('ssls never answer private keys', async () => {
    const put = await h.api('PUT', '/apisix/admin/ssls/1', { body: { cert, key, snis: ['test.com'] } });
    expect(put.status, put.text).toBe(201);
    expect(put.json.value.key).toBeUndefined();
    const g = await h.api('GET', '/apisix/admin/ssls/1');
    expect(g.json.value.cert).toBe(cert);
    expect(g.json.value.key).toBeUndefined();
    const l = await h.api('GET', '/apisix/admin/ssls');
    expect(l.json.list[0].value.key).toBeUndefined();
    const stored = await store.fetch('ssls', '1');
    expect(stored?.value.key).toBe(key);
  });

  it('plugin_metadata is stored with id = plugin name, no timestamps', async () => {
    const r = await h.api('PUT', '/apisix/admin/plugin_metadata/http-logger', { body: { log_format: { host: '$host' } } });
    expect(r.status, r.text).toBe(201);
    expect(r.json).toEqual({ key: '/apisix/plugin_metadata/http-logger', value: { id: 'http-logger', log_format: { host: '$host' } } });
    const bad = await h.api('PUT', '/apisix/admin/plugin_metadata/no-such-plugin', { body: {} });
    expect(bad).toMatchObject({ status: 400, json: { error_msg: 'invalid plugin name' } });
  });

  it('stream_routes and secrets', async () => {
    const sr = await h.api('PUT', '/apisix/admin/stream_routes/1', { body: { server_port: 9100, upstream: UPSTREAM } });
    expect(sr.status, sr.text).toBe(201);
    const srPost = await h.api('POST', '/apisix/admin/stream_routes', { body: { server_port: 9101, upstream: UPSTREAM } });
    expect(srPost.status).toBe(201);
    const sec = await h.api('PUT', '/apisix/admin/secrets/vault/s1', {
      body: { uri: 'http://127.0.0.1:8200', prefix: 'kv/apisix', token: 'root' },
    });
    expect(sec.status, sec.text).toBe(201);
    expect(sec.json.key).toBe('/apisix/secrets/vault/s1');
    expect(sec.json.value.id).toBe('vault/s1');
    const badMgr = await h.api('PUT', '/apisix/admin/secrets/nope/s1', { body: {} });
    expect(badMgr.status).toBe(400);
    const list = await h.api('GET', '/apisix/admin/secrets');
    expect(list.json.total).toBe(1);
  });

  it('refuses stream routes when stream mode is off', async () => {
    const off = await startAdmin({ store, streamEnabled: false });
    try {
      const r = await off.api('PUT', '/apisix/admin/stream_routes/2', { body: { server_port: 9102, upstream: UPSTREAM } });
      expect(r).toMatchObject({ status: 400, json: { error_msg: 'stream mode is disabled, can not add stream routes' } });
      expect((await off.api('GET', '/apisix/admin/stream_routes/1')).status).toBe(200);
    } finally {
      await off.close();
    }
  });
});
