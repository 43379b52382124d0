// The plugin execution model through the real gateway (apisix-compat 5, 10.11): priority and
// _meta.priority, merge precedence, _meta.disable/filter/error_response, global rules.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { client } from './client.ts';

let gw: TestGateway;
let up: EchoServer;
const cl = client();
let upstream: Record<string, unknown>;

function rr(value: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { 'response-rewrite': { headers: { set: { 'x-src': value } }, ...extra } };
}

beforeAll(async () => {
  up = await startEcho('plugins');
  gw = await startTestGateway();
  upstream = { nodes: { [up.addr]: 1 } };
});

afterAll(async () => {
  await cl.close();
  await gw?.close();
  await up?.close();
});

describe('plugin execution model', () => {
  test('header_filter order follows plugin priority, and _meta.priority overrides it', async () => {
    const origin = 'https://app.example';
    const cors = { cors: { allow_origins: origin } };
    // cors (4000) runs before response-rewrite (899): response-rewrite has the last word.
    await gw.put('/routes/order', {
      uri: '/order',
      upstream,
      plugins: { ...cors, 'response-rewrite': { headers: { set: { 'access-control-allow-origin': 'from-rr' } } } },
    });
    const a = await cl.call(`${gw.url}/order`, { headers: { origin } });
    expect(a.headers['access-control-allow-origin']).toBe('from-rr');
    // Raised above cors, response-rewrite runs first and cors overwrites it.
    await gw.put('/routes/order', {
      uri: '/order',
      upstream,
      plugins: { ...cors, 'response-rewrite': { headers: { set: { 'access-control-allow-origin': 'from-rr' } }, _meta: { priority: 5000 } } },
    });
    const b = await cl.call(`${gw.url}/order`, { headers: { origin } });
    expect(b.headers['access-control-allow-origin']).toBe(origin);
  });

  test('merge precedence: consumer > consumer_group > route > plugin_config > service', async () => {
    await gw.put('/services/svc', { upstream, plugins: rr('service') });
    await gw.put('/routes/merge', { uri: '/merge', service_id: 'svc' });
    const src = async (headers: Record<string, string> = {}) => {
      const r = await cl.call(`${gw.url}/merge`, { headers });
      return r.status === 200 ? r.headers['x-src'] : r.status;
    };
    expect(await src()).toBe('service');

    // plugin_config fills in only what the route lacks, but beats the service.
    await gw.put('/plugin_configs/pc', { plugins: { ...rr('plugin_config'), 'proxy-rewrite': { headers: { set: { 'x-from-pc': '1' } } } } });
    await gw.put('/routes/merge', { uri: '/merge', service_id: 'svc', plugin_config_id: 'pc' });
    expect(await src()).toBe('plugin_config');
    await gw.put('/routes/merge', { uri: '/merge', service_id: 'svc', plugin_config_id: 'pc', plugins: rr('route') });
    expect(await src()).toBe('route');
    expect((await cl.call(`${gw.url}/merge`)).json().headers['x-from-pc']).toBe('1');

    await gw.put('/routes/merge', { uri: '/merge', service_id: 'svc', plugin_config_id: 'pc', plugins: { ...rr('route'), 'key-auth': {} } });
    await gw.put('/consumer_groups/gold', { plugins: rr('consumer_group') });
    await gw.put('/consumers', { username: 'jack', group_id: 'gold', plugins: { 'key-auth': { key: 'jack-key-0001' } } });
    await gw.put('/consumers', { username: 'anna', plugins: { 'key-auth': { key: 'anna-key-0001' } } });
    expect(await src()).toBe(401);
    expect(await src({ apikey: 'anna-key-0001' })).toBe('route');
    expect(await src({ apikey: 'jack-key-0001' })).toBe('consumer_group');
    await gw.put('/consumers', { username: 'jack', group_id: 'gold', plugins: { 'key-auth': { key: 'jack-key-0001' }, ...rr('consumer') } });
    expect(await src({ apikey: 'jack-key-0001' })).toBe('consumer');
    // The consumer's plugins apply to that consumer only.
    expect(await src({ apikey: 'anna-key-0001' })).toBe('route');
  });

  test('_meta.disable, _meta.filter and _meta.error_response', async () => {
    await gw.put('/routes/meta-disable', { uri: '/meta/disable', upstream, plugins: rr('on', { _meta: { disable: true } }) });
    expect((await cl.call(`${gw.url}/meta/disable`)).headers['x-src']).toBeUndefined();

    await gw.put('/routes/meta-filter', { uri: '/meta/filter', upstream, plugins: rr('filtered', { _meta: { filter: [['arg_v', '==', '1']] } }) });
    expect((await cl.call(`${gw.url}/meta/filter?v=1`)).headers['x-src']).toBe('filtered');
    expect((await cl.call(`${gw.url}/meta/filter?v=2`)).headers['x-src']).toBeUndefined();

    await gw.put('/routes/meta-error', {
      uri: '/meta/error',
      upstream,
      plugins: { 'ip-restriction': { blacklist: ['127.0.0.1'], _meta: { error_response: { reason: 'nope' } } } },
    });
    const denied = await cl.call(`${gw.url}/meta/error`);
    expect(denied.status).toBe(403);
    expect(denied.json()).toEqual({ reason: 'nope' });
  });

  test('global rules run before route plugins, and on unmatched requests', async () => {
    await gw.put('/global_rules/g1', {
      plugins: {
        'proxy-rewrite': { headers: { add: { 'x-order': 'global' } } },
        'response-rewrite': { headers: { set: { 'x-global': 'yes' } } },
        // Only for requests carrying x-block: proves the access phase of global rules runs on a 404 path too.
        'ip-restriction': { blacklist: ['127.0.0.0/8'], _meta: { filter: [['http_x_block', '==', '1']] } },
      },
    });
    await gw.put('/routes/glob', { uri: '/glob', upstream, plugins: { 'proxy-rewrite': { headers: { add: { 'x-order': 'route' } } } } });
    const r = await cl.call(`${gw.url}/glob`);
    expect(r.status).toBe(200);
    expect(r.headers['x-global']).toBe('yes');
    // Global rules' rewrite phase ran first; the route's plugin then changed what the upstream got.
    const order = r.json().headers['x-order'];
    expect(order).toBe('global, route');

    const miss = await cl.call(`${gw.url}/no-such-route`);
    expect(miss.status).toBe(404);
    expect(miss.headers['x-global']).toBe('yes');
    expect(miss.text).toBe('{"error_msg":"404 Route Not Found"}\n');
    const blocked = await cl.call(`${gw.url}/no-such-route`, { headers: { 'x-block': '1' } });
    expect(blocked.status).toBe(403);
    await gw.admin('DELETE', '/global_rules/g1');
    await gw.synced();
  });
});
