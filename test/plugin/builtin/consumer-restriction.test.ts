import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumerRestrictionPlugin as def } from '../../../src/plugin/builtin/consumer-restriction.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { confError } from '../helpers.ts';

describe('consumer-restriction', () => {
  let gw: TestGateway;
  let up: EchoServer;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('a');
    await gw.put('/consumer_groups/gold', { plugins: {} });
    await gw.put('/consumers/jack', { username: 'jack', group_id: 'gold', plugins: { 'key-auth': { key: 'jack-key' } } });
    await gw.put('/consumers/rose', { username: 'rose', plugins: { 'key-auth': { key: 'rose-key' } } });
    const upstream = { nodes: { [up.addr]: 1 } };
    const ka = { 'key-auth': {} };
    await gw.put('/routes/wl', { uri: '/wl', plugins: { ...ka, 'consumer-restriction': { whitelist: ['jack'] } }, upstream });
    await gw.put('/routes/bl', {
      uri: '/bl',
      plugins: { ...ka, 'consumer-restriction': { blacklist: ['jack'], rejected_code: 401, rejected_msg: 'go away' } },
      upstream,
    });
    await gw.put('/routes/grp', { uri: '/grp', plugins: { ...ka, 'consumer-restriction': { type: 'consumer_group_id', whitelist: ['gold'] } }, upstream });
    await gw.put('/routes/methods', {
      uri: '/methods',
      plugins: { ...ka, 'consumer-restriction': { allowed_by_methods: [{ user: 'jack', methods: ['POST'] }] } },
      upstream,
    });
    await gw.put('/routes/noauth', { uri: '/noauth', plugins: { 'consumer-restriction': { whitelist: ['jack'] } }, upstream });
    await gw.put('/routes/rid', { uri: '/rid', plugins: { 'consumer-restriction': { type: 'route_id', blacklist: ['rid'] } }, upstream });
    await gw.put('/services/svc', { upstream, plugins: { 'consumer-restriction': { type: 'service_id', whitelist: ['svc'] } } });
    await gw.put('/routes/in-svc', { uri: '/in-svc', service_id: 'svc' });
    await gw.put('/routes/nosvc', { uri: '/nosvc', plugins: { 'consumer-restriction': { type: 'service_id', whitelist: ['svc'] } }, upstream });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  const call = async (p: string, key?: string, method = 'GET') => {
    const r = await fetch(`${gw.url}${p}`, { method, headers: key ? { apikey: key } : {} });
    const text = await r.text();
    return { status: r.status, text };
  };

  it('validates confs like APISIX (one of the lists is required)', () => {
    expect(confError(def, {})).not.toBeNull();
    expect(confError(def, { whitelist: [] })).not.toBeNull();
    expect(confError(def, { whitelist: ['a'], type: 'ip' })).not.toBeNull();
    expect(confError(def, { allowed_by_methods: [{ user: 'a', methods: ['FOO'] }] })).not.toBeNull();
    expect(confError(def, { blacklist: ['a'], rejected_code: 199 })).not.toBeNull();
    expect(confError(def, { allowed_by_methods: [{ user: 'a', methods: ['GET'] }] })).toBeNull();
  });

  it('whitelist by consumer name', async () => {
    expect((await call('/wl', 'jack-key')).status).toBe(200);
    expect(await call('/wl', 'rose-key')).toEqual({ status: 403, text: '{"message":"The consumer_name is forbidden."}\n' });
  });

  it('blacklist with rejected_code and rejected_msg', async () => {
    expect(await call('/bl', 'jack-key')).toEqual({ status: 401, text: '{"message":"go away"}\n' });
    expect((await call('/bl', 'rose-key')).status).toBe(200);
  });

  it('by consumer group', async () => {
    expect((await call('/grp', 'jack-key')).status).toBe(200);
    // rose has no group: the value is absent
    expect(await call('/grp', 'rose-key')).toEqual({
      status: 401,
      text: '{"message":"The request is rejected, please check the consumer_group_id for this request"}\n',
    });
  });

  it('allowed_by_methods limits the listed user only', async () => {
    expect((await call('/methods', 'jack-key', 'POST')).status).toBe(200);
    expect((await call('/methods', 'jack-key', 'GET')).status).toBe(403);
    expect((await call('/methods', 'rose-key', 'GET')).status).toBe(200);
  });

  it('without an identified consumer the request is rejected with 401', async () => {
    expect(await call('/noauth')).toEqual({
      status: 401,
      text: '{"message":"The request is rejected, please check the consumer_name for this request"}\n',
    });
  });

  it('by route id and service id', async () => {
    expect(await call('/rid')).toEqual({ status: 403, text: '{"message":"The route_id is forbidden."}\n' });
    expect((await call('/in-svc')).status).toBe(200);
    expect((await call('/nosvc')).status).toBe(401);
    expect(up.seen.every((s) => s.url !== '/rid' && s.url !== '/nosvc' && s.url !== '/noauth')).toBe(true);
  });
});
