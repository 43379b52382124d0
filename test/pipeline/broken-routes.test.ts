// Routes whose references cannot be resolved (loaded from the standalone file, where nothing checks them) answer
// with APISIX's statuses and nginx's error page, in APISIX's order (init.lua: plugin_config 503, then service
// 404, then upstream_id 502), and never reach an upstream; the same holds for a WebSocket upgrade. A missing
// upstream_id is found only at the upstream step (handle_upstream, after rewrite and access): the route's
// plugins answer first.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { exec } from '../https/pki.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';

let gw: TestGateway;
let up: EchoServer;

beforeAll(async () => {
  up = await startEcho('B');
  const upstream = { type: 'roundrobin', nodes: { [up.addr]: 1 } };
  gw = await startTestGateway({
    standalone: {
      routes: [
        { id: 'pc', uri: '/pc', plugin_config_id: 'gone', upstream },
        { id: 'svc', uri: '/svc', service_id: 'gone' },
        { id: 'up', uri: '/up', upstream_id: 'gone' },
        { id: 'both', uri: '/both', service_id: 'gone', plugin_config_id: 'gone' },
        { id: 'ws', uri: '/ws', enable_websocket: true, plugin_config_id: 'gone', upstream },
        { id: 'ok', uri: '/ok', upstream },
        { id: 'auth-up', uri: '/auth-up', upstream_id: 'gone', plugins: { 'key-auth': {} } },
        { id: 'auth-up-ws', uri: '/auth-up-ws', enable_websocket: true, upstream_id: 'gone', plugins: { 'key-auth': {} } },
      ],
      consumers: [{ username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } }],
    },
  });
});

afterAll(async () => {
  await Promise.all([gw?.close(), up?.close()]);
});

async function get(p: string, extra: string[] = []): Promise<{ status: number; type: string; body: string }> {
  const r = await exec('curl', ['-sS', '--max-time', '10', '-w', '\n%{http_code} %{content_type}', ...extra, `${gw.url}${p}`]);
  const nl = r.stdout.lastIndexOf('\n');
  const [status = '', type = ''] = r.stdout.slice(nl + 1).split(' ');
  return { status: Number(status), type, body: r.stdout.slice(0, nl) };
}

describe('routes with dangling references', () => {
  test.each([
    ['/pc', 503, 'Service Temporarily Unavailable'],
    ['/svc', 404, 'Not Found'],
    ['/up', 502, 'Bad Gateway'],
    ['/both', 503, 'Service Temporarily Unavailable'],
  ])('%s answers %i with the error page', async (p, status, text) => {
    const before = up.seen.length;
    const r = await get(p);
    expect(r.status).toBe(status);
    expect(r.type).toMatch(/^text\/html/);
    expect(r.body).toContain(`<title>${status} ${text}</title>`);
    expect(up.seen.length).toBe(before);
  });

  test('a WebSocket upgrade on a route with a missing plugin_config answers 503, not 101', async () => {
    const before = up.seen.length;
    const r = await get('/ws', ['-H', 'Connection: Upgrade', '-H', 'Upgrade: websocket', '-H', 'Sec-WebSocket-Version: 13', '-H', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==']);
    expect(r.status).toBe(503);
    expect(up.seen.length).toBe(before);
    expect((await get('/ok')).status).toBe(200);
  });

  test('a missing upstream_id answers after the plugins: 401 without a key, 502 with a valid one', async () => {
    const before = up.seen.length;
    const anon = await get('/auth-up');
    expect(anon.status).toBe(401);
    expect(anon.type).toMatch(/^application\/json/);
    expect(JSON.parse(anon.body)).toEqual({ message: 'Missing API key in request' });
    const authed = await get('/auth-up', ['-H', 'apikey: jack-key']);
    expect(authed.status).toBe(502);
    expect(authed.type).toMatch(/^text\/html/);
    expect(authed.body).toContain('<title>502 Bad Gateway</title>');
    expect(up.seen.length).toBe(before);
  });

  test('the same holds for a WebSocket upgrade: 401 without a key, 502 with one, never 101', async () => {
    const ws = ['-H', 'Connection: Upgrade', '-H', 'Upgrade: websocket', '-H', 'Sec-WebSocket-Version: 13', '-H', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='];
    expect((await get('/auth-up-ws', ws)).status).toBe(401);
    expect((await get('/auth-up-ws', [...ws, '-H', 'apikey: jack-key'])).status).toBe(502);
  });
});
