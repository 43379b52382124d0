// consumer-restriction over h2c and on WebSocket upgrades: consumers identified by key-auth are allowed or
// rejected by name, group and method on every transport, and a rejected upgrade never reaches the upstream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { h2Request, startWsUpstream, wsRoundTrip, type WsUpstream } from './auth-transports.ts';

type Echo = { method: string; headers: Record<string, string | undefined> };

describe('consumer-restriction over h2c and WebSocket upgrades', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let wsUp: WsUpstream;

  beforeAll(async () => {
    [gw, up, wsUp] = await Promise.all([startTestGateway(), startEcho('a'), startWsUpstream()]);
    await gw.put('/consumer_groups/gold', { plugins: {} });
    await gw.put('/consumers/jack', { username: 'jack', group_id: 'gold', plugins: { 'key-auth': { key: 'jack-key' } } });
    await gw.put('/consumers/rose', { username: 'rose', plugins: { 'key-auth': { key: 'rose-key' } } });
    const upstream = { nodes: { [up.addr]: 1 } };
    const wsUpstream = { nodes: { [wsUp.addr]: 1 } };
    const ka = { 'key-auth': {} };
    await gw.put('/routes/wl', { uri: '/wl', plugins: { ...ka, 'consumer-restriction': { whitelist: ['jack'] } }, upstream });
    await gw.put('/routes/methods', {
      uri: '/methods',
      plugins: { ...ka, 'consumer-restriction': { allowed_by_methods: [{ user: 'jack', methods: ['POST'] }] } },
      upstream,
    });
    await gw.put('/routes/noauth', { uri: '/noauth', plugins: { 'consumer-restriction': { whitelist: ['jack'] } }, upstream });
    await gw.put('/routes/ws', {
      uri: '/ws',
      enable_websocket: true,
      plugins: { ...ka, 'consumer-restriction': { blacklist: ['rose'], rejected_code: 401, rejected_msg: 'go away' } },
      upstream: wsUpstream,
    });
    await gw.put('/routes/wsgrp', {
      uri: '/wsgrp',
      enable_websocket: true,
      plugins: { ...ka, 'consumer-restriction': { type: 'consumer_group_id', whitelist: ['gold'] } },
      upstream: wsUpstream,
    });
    // The handshake is a GET: a consumer limited to POST cannot upgrade.
    await gw.put('/routes/wsmethods', {
      uri: '/wsmethods',
      enable_websocket: true,
      plugins: { ...ka, 'consumer-restriction': { allowed_by_methods: [{ user: 'rose', methods: ['POST'] }] } },
      upstream: wsUpstream,
    });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await wsUp?.close();
  });

  it('h2c: whitelist by name, allowed_by_methods and the absent-consumer 401, none rejected reaching the upstream', async () => {
    const h2 = (path: string, key?: string, method = 'GET') =>
      h2Request(gw.url, { ':method': method, ':path': path, ...(key ? { apikey: key } : {}) }, method === 'POST' ? 'x' : undefined);
    let r = await h2('/wl', 'jack-key');
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as Echo).headers['x-consumer-username']).toBe('jack');
    const before = up.seen.length;
    r = await h2('/wl', 'rose-key');
    expect([r.status, r.body]).toEqual([403, '{"message":"The consumer_name is forbidden."}\n']);
    r = await h2('/methods', 'jack-key', 'GET');
    expect([r.status, r.body]).toEqual([403, '{"message":"The consumer_name is forbidden."}\n']);
    r = await h2('/noauth');
    expect([r.status, r.body]).toEqual([401, '{"message":"The request is rejected, please check the consumer_name for this request"}\n']);
    expect(up.seen.length).toBe(before);

    r = await h2('/methods', 'jack-key', 'POST');
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as Echo).method).toBe('POST');
    expect((await h2('/methods', 'rose-key', 'GET')).status).toBe(200);
  });

  it('WebSocket: blacklisted, group-less and method-limited consumers cannot upgrade; the upstream never sees them', async () => {
    const ws = (path: string, key: string) => wsRoundTrip(`ws://127.0.0.1:${gw.port}${path}`, { apikey: key });
    const before = wsUp.upgrades.length;
    expect(await ws('/ws', 'rose-key')).toEqual({ ok: false, status: 401, body: '{"message":"go away"}\n' });
    expect(await ws('/wsgrp', 'rose-key')).toEqual({
      ok: false,
      status: 401,
      body: '{"message":"The request is rejected, please check the consumer_group_id for this request"}\n',
    });
    expect(await ws('/wsmethods', 'rose-key')).toEqual({ ok: false, status: 403, body: '{"message":"The consumer_name is forbidden."}\n' });
    expect(wsUp.upgrades.length).toBe(before);
  });

  it('WebSocket: allowed consumers open the tunnel', async () => {
    for (const path of ['/ws', '/wsgrp', '/wsmethods']) {
      const res = await wsRoundTrip(`ws://127.0.0.1:${gw.port}${path}`, { apikey: 'jack-key' });
      expect(res, path).toEqual({ ok: true, echo: 'echo:ping' });
      expect(wsUp.upgrades.at(-1)!['x-consumer-username']).toBe('jack');
    }
  });
});
