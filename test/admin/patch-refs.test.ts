// PATCH semantics (merge, sub-path, null delete, CAS) and reference integrity / delete protection against a
// real etcd.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEtcdStore } from '../../src/config/store-etcd.ts';
import type { ConfigStore } from '../../src/config/store.ts';
import type { Kind, StoredItem } from '../../src/config/resources.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startEtcd, type EtcdPeer } from '../helpers/etcd.ts';
import { startAdmin, UPSTREAM, type AdminHarness } from './harness.ts';

let etcd: EtcdPeer;
let store: ConfigStore;
let h: AdminHarness;

beforeAll(async () => {
  etcd = await startEtcd();
  store = await createEtcdStore({ hosts: [etcd.endpoint], prefix: '/apisix', timeoutSec: 5, logger: silentLogger });
  h = await startAdmin({ store });
});

afterAll(async () => {
  await h?.close();
  await store?.close();
  await etcd?.stop();
});

describe('PATCH', () => {
  it('merges objects, replaces arrays, deletes on null, re-validates', async () => {
    await h.api('PUT', '/apisix/admin/routes/1', {
      body: { uri: '/a', methods: ['GET', 'POST'], desc: 'd', labels: { a: '1', b: '2' }, upstream: UPSTREAM },
    });
    const before = (await h.api('GET', '/apisix/admin/routes/1')).json;
    const p = await h.api('PATCH', '/apisix/admin/routes/1', {
      body: { methods: ['PUT'], desc: null, labels: { b: null, c: '3' } },
    });
    expect(p.status, p.text).toBe(200);
    expect(Object.keys(p.json).sort()).toEqual(['key', 'value']);
    expect(p.json.value).toMatchObject({ id: '1', uri: '/a', methods: ['PUT'], labels: { a: '1', c: '3' }, upstream: UPSTREAM });
    expect(p.json.value.desc).toBeUndefined();
    expect(p.json.value.create_time).toBe(before.value.create_time);
    const invalid = await h.api('PATCH', '/apisix/admin/routes/1', { body: { uri: 7 } });
    expect(invalid.status).toBe(400);
    expect(invalid.json.error_msg).toMatch(/^invalid configuration/);
    const wrongId = await h.api('PATCH', '/apisix/admin/routes/1', { body: { id: '2' } });
    expect(wrongId.json).toEqual({ error_msg: 'wrong route id' });
    expect((await h.api('GET', '/apisix/admin/routes/1')).json.value.uri).toBe('/a');
    const missing = await h.api('PATCH', '/apisix/admin/routes/nope', { body: { uri: '/x' } });
    expect(missing).toMatchObject({ status: 404, json: { message: 'Key not found' } });
    const noBody = await h.api('PATCH', '/apisix/admin/routes/1');
    expect(noBody.json).toEqual({ error_msg: 'missing new configuration' });
    const scalar = await h.api('PATCH', '/apisix/admin/routes/1', { body: 'x' });
    expect(scalar.json).toEqual({ error_msg: 'invalid configuration' });
    const withTime = await h.api('PATCH', '/apisix/admin/routes/1', { body: { update_time: 1234 } });
    expect(withTime.json.value.update_time).toBe(1234);
  });

  it('replaces a sub-path and refuses a non-object intermediate', async () => {
    const p = await h.api('PATCH', '/apisix/admin/routes/1/upstream/nodes', { body: { '127.0.0.1:1981': 2 } });
    expect(p.status, p.text).toBe(200);
    expect(p.json.value.upstream.nodes).toEqual({ '127.0.0.1:1981': 2 });
    const u = await h.api('PATCH', '/apisix/admin/routes/1/uri', { body: '/z' });
    expect(u.json.value.uri).toBe('/z');
    const bad = await h.api('PATCH', '/apisix/admin/routes/1/uri/x', { body: 1 });
    expect(bad).toMatchObject({ status: 400, json: { error_msg: 'invalid sub-path: /uri' } });
  });

  it('applies ?ttl= on PATCH', async () => {
    await h.api('PUT', '/apisix/admin/upstreams/pt', { body: UPSTREAM });
    const p = await h.api('PATCH', '/apisix/admin/upstreams/pt?ttl=abc', { body: { desc: 'x' } });
    expect(p.json).toEqual({ error_msg: 'invalid argument ttl: should be a number' });
  });

  it('answers 503 when the object changed between read and write', async () => {
    // A store whose fetch() is followed by a concurrent writer touching the same key.
    const racing = new Proxy(store, {
      get(target, prop, recv) {
        if (prop === 'fetch') {
          return async (kind: Kind, id: string): Promise<StoredItem | undefined> => {
            const item = await target.fetch(kind, id);
            if (item && kind === 'routes' && id === 'race') await target.put(kind, id, { ...item.value, desc: 'other' });
            return item;
          };
        }
        const v = Reflect.get(target, prop, recv);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    await h.api('PUT', '/apisix/admin/routes/race', { body: { uri: '/r', upstream: UPSTREAM } });
    const racer = await startAdmin({ store: racing });
    try {
      const r = await racer.api('PATCH', '/apisix/admin/routes/race', { body: { desc: 'mine' } });
      expect(r).toMatchObject({ status: 503, json: { error_msg: 'value changed before overwritten' } });
      expect((await store.fetch('routes', 'race'))?.value.desc).toBe('other');
    } finally {
      await racer.close();
    }
  });
});

describe('references', () => {
  it('refuses writes naming missing objects', async () => {
    const cases: [string, object, string][] = [
      ['routes/r', { uri: '/r', upstream_id: '99' }, 'failed to fetch upstream info by upstream id [99], response code: 404'],
      ['routes/r', { uri: '/r', service_id: 's9' }, 'failed to fetch service info by service id [s9], response code: 404'],
      ['routes/r', { uri: '/r', upstream: UPSTREAM, plugin_config_id: 'pc9' }, 'failed to fetch plugin config info by plugin config id [pc9], response code: 404'],
      ['services/s', { upstream_id: 99 }, 'failed to fetch upstream info by upstream id [99], response code: 404'],
      ['consumers/c', { username: 'c', group_id: 'g9' }, 'failed to fetch consumer group info by consumer group id [g9], response code: 404'],
      ['upstreams/u', { ...UPSTREAM, tls: { client_cert_id: 'ssl9' } }, 'failed to fetch ssl info by ssl id [ssl9], response code: 404'],
      ['stream_routes/sr', { server_port: 9000, upstream_id: 'u9' }, 'failed to fetch upstream info by upstream id [u9], response code: 404'],
      [
        'routes/r',
        { uri: '/r', upstream: UPSTREAM, plugins: { 'traffic-split': { rules: [{ weighted_upstreams: [{ upstream_id: 'u8', weight: 1 }] }] } } },
        'failed to fetch upstream info by upstream id [u8], response code: 404',
      ],
      [
        'stream_routes/sr',
        { server_port: 9000, upstream: UPSTREAM, protocol: { name: 'redis', superior_id: 'sr9' } },
        'failed to fetch stream routes[sr9], response code: 404',
      ],
    ];
    for (const [path, body, msg] of cases) {
      const r = await h.api('PUT', `/apisix/admin/${path}`, { body });
      expect(r.status, `${path}: ${r.text}`).toBe(400);
      expect(r.json.error_msg).toBe(msg);
    }
    expect((await h.api('GET', '/apisix/admin/routes/r')).status).toBe(404);
  });

  it('protects referenced objects from DELETE unless ?force=true', async () => {
    await h.api('PUT', '/apisix/admin/upstreams/1', { body: UPSTREAM });
    await h.api('PUT', '/apisix/admin/upstreams/2', { body: UPSTREAM });
    await h.api('PUT', '/apisix/admin/services/1', { body: { upstream_id: '2' } });
    await h.api('PUT', '/apisix/admin/plugin_configs/1', { body: { plugins: { 'limit-count': { count: 1, time_window: 1 } } } });
    await h.api('PUT', '/apisix/admin/consumer_groups/1', { body: { plugins: { 'limit-count': { count: 1, time_window: 1 } } } });
    await h.api('PUT', '/apisix/admin/protos/1', { body: { content: 'syntax = "proto3";\npackage x;\nmessage A { string a = 1; }' } });
    const route = await h.api('PUT', '/apisix/admin/routes/10', {
      body: { uri: '/ten', upstream_id: 1, service_id: '1', plugin_config_id: '1', plugins: { 'grpc-transcode': { proto_id: '1' } } },
    });
    expect(route.status, route.text).toBe(201);
    await h.api('PUT', '/apisix/admin/consumers/jim', { body: { username: 'jim', group_id: '1' } });
    await h.api('PUT', '/apisix/admin/upstreams/3', { body: UPSTREAM });
    await h.api('PUT', '/apisix/admin/global_rules/1', {
      body: { plugins: { 'traffic-split': { rules: [{ weighted_upstreams: [{ upstream_id: '3', weight: 1 }] }] } } },
    });
    await h.api('PUT', '/apisix/admin/stream_routes/a', { body: { server_port: 9000, upstream: UPSTREAM, protocol: { name: 'redis' } } });
    const sub = await h.api('PUT', '/apisix/admin/stream_routes/b', {
      body: { server_port: 9001, upstream: UPSTREAM, protocol: { name: 'redis', superior_id: 'a' } },
    });
    expect(sub.status, sub.text).toBe(201);

    const blocked: [string, string][] = [
      ['upstreams/1', 'can not delete this upstream, route [10] is still using it now'],
      ['upstreams/2', 'can not delete this upstream, service [1] is still using it now'],
      ['upstreams/3', 'can not delete this upstream, plugin in global rule [1] is still using it now'],
      ['services/1', 'can not delete this service directly, route [10] is still using it now'],
      ['plugin_configs/1', 'can not delete this plugin config, route [10] is still using it now'],
      ['consumer_groups/1', 'can not delete this consumer group, consumer [jim] is still using it now'],
      ['protos/1', 'can not delete this proto, route [10] is still using it now'],
      ['stream_routes/a', 'can not delete this stream route directly, stream route [b] will refer it'],
    ];
    for (const [path, msg] of blocked) {
      const r = await h.api('DELETE', `/apisix/admin/${path}`);
      expect(r.status, path).toBe(400);
      expect(r.json.error_msg).toBe(msg);
      expect((await h.api('GET', `/apisix/admin/${path}`)).status).toBe(200);
    }
    const forced = await h.api('DELETE', '/apisix/admin/upstreams/1?force=true');
    expect(forced.json).toEqual({ deleted: '1', key: '/apisix/upstreams/1' });
    const notForced = await h.api('DELETE', '/apisix/admin/services/1?force=1');
    expect(notForced.status).toBe(400);
  });

  it('accepts references to existing objects', async () => {
    await h.api('PUT', '/apisix/admin/upstreams/ok', { body: UPSTREAM });
    const r = await h.api('PUT', '/apisix/admin/routes/ok', { body: { uri: '/ok', upstream_id: 'ok' } });
    expect(r.status).toBe(201);
    const f = await h.api('GET', '/apisix/admin/routes?filter=' + encodeURIComponent('upstream_id=ok'));
    expect(f.json.list.map((n: any) => n.value.id)).toEqual(['ok']);
  });
});
