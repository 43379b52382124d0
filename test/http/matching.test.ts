// Route matching through the real gateway (apisix-compat 2, 3, 10.9-10.10). Every route sends its own id as
// the upstream Host (pass_host rewrite), so the echo upstream tells which route matched.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { client, curl } from './client.ts';

let gw: TestGateway;
let up: EchoServer;
const http = client();

function upstreamFor(id: string) {
  return { nodes: { [up.addr]: 1 }, pass_host: 'rewrite', upstream_host: `r-${id}` };
}

async function route(id: string, body: Record<string, unknown>): Promise<void> {
  await gw.put(`/routes/${id}`, { upstream: upstreamFor(id), ...body });
}

/** The id of the route that served `path`, or the status when none did. */
async function who(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<string> {
  const r = await http.call(gw.url + path, { headers, method });
  if (r.status !== 200) return String(r.status);
  return (r.json().headers.host as string).slice(2);
}

beforeAll(async () => {
  up = await startEcho('match');
  gw = await startTestGateway();
});

afterAll(async () => {
  await http.close();
  await gw?.close();
  await up?.close();
});

describe('HTTP route matching', () => {
  test('exact before prefix before :param; uris[]; uri_param_* in vars', async () => {
    await route('exact', { uri: '/m/exact' });
    await route('prefix', { uri: '/m/*' });
    await route('param', { uri: '/m/users/:id', vars: [['uri_param_id', '~~', '^[0-9]+$']] });
    await route('multi', { uris: ['/u/one', '/u/two'] });
    expect(await who('/m/exact')).toBe('exact');
    expect(await who('/m/exact/more')).toBe('prefix');
    expect(await who('/m/other')).toBe('prefix');
    expect(await who('/m/users/42')).toBe('param');
    // The capture fails the route's vars, so the prefix route is next.
    expect(await who('/m/users/abc')).toBe('prefix');
    // :param spans one segment only.
    expect(await who('/m/users/42/x')).toBe('prefix');
    expect(await who('/u/one')).toBe('multi');
    expect(await who('/u/two')).toBe('multi');
    expect(await who('/u/three')).toBe('404');
  });

  test('hosts: exact host, then leading wildcard, then host-less; service hosts apply to its routes', async () => {
    await route('h-any', { uri: '/h' });
    await route('h-wild', { uri: '/h', hosts: ['*.example.com'] });
    await route('h-exact', { uri: '/h', host: 'api.example.com' });
    await gw.put('/services/svc', { hosts: ['svc.test'] });
    await route('h-svc', { uri: '/s', service_id: 'svc' });
    expect(await who('/h', { host: 'api.example.com' })).toBe('h-exact');
    expect(await who('/h', { host: 'API.Example.com:9080' })).toBe('h-exact');
    expect(await who('/h', { host: 'www.example.com' })).toBe('h-wild');
    expect(await who('/h', { host: 'a.b.example.com' })).toBe('h-wild');
    expect(await who('/h', { host: 'example.org' })).toBe('h-any');
    expect(await who('/s', { host: 'svc.test' })).toBe('h-svc');
    expect(await who('/s', { host: 'other.test' })).toBe('404');
    // curl sets Host from --resolve'd name the way a real client would.
    const port = new URL(gw.url).port;
    const c = await curl(['--resolve', `www.example.com:${port}:127.0.0.1`, `http://www.example.com:${port}/h`]);
    expect(c.status).toBe(200);
    expect(JSON.parse(c.body).headers.host).toBe('r-h-wild');
  });

  test('methods, remote_addrs CIDR and priority', async () => {
    await route('post-only', { uri: '/meth', methods: ['POST', 'PUT'] });
    expect(await who('/meth', {}, 'POST')).toBe('post-only');
    expect(await who('/meth', {}, 'PUT')).toBe('post-only');
    expect(await who('/meth', {}, 'GET')).toBe('404');

    await route('ra-10', { uri: '/ra', remote_addrs: ['10.0.0.0/8'], priority: 10 });
    expect(await who('/ra')).toBe('404');
    await route('ra-local', { uri: '/ra', remote_addrs: ['127.0.0.1/32', '::1'] });
    expect(await who('/ra')).toBe('ra-local');

    await route('p-low', { uri: '/prio', priority: 1 });
    await route('p-high', { uri: '/prio', priority: 5 });
    expect(await who('/prio')).toBe('p-high');
    await route('p-high', { uri: '/prio', priority: -1 });
    expect(await who('/prio')).toBe('p-low');
  });

  test('vars with several operators over http_*, arg_*, cookie_*', async () => {
    await route('v-canary', {
      uri: '/v',
      priority: 30,
      vars: [
        ['http_x_env', '==', 'canary'],
        ['arg_ver', '>=', 2],
      ],
    });
    await route('v-vip', { uri: '/v', priority: 20, vars: [['cookie_user', '~~', '^vip-'], ['arg_region', 'in', ['eu', 'us']]] });
    await route('v-ci', { uri: '/v', priority: 10, vars: [['http_user_agent', '~*', 'BOT'], ['arg_debug', '!', '~=', 'yes']] });
    await route('v-or', { uri: '/v', priority: 5, vars: [['OR', ['arg_a', '==', '1'], ['http_x_b', '~=', 'nope']]] });
    await route('v-none', { uri: '/v', priority: 0, vars: [['arg_never', '==', 'x']] });

    expect(await who('/v?ver=3', { 'x-env': 'canary' })).toBe('v-canary');
    // Numeric compare: a non-numeric left side is false.
    expect(await who('/v?ver=abc', { 'x-env': 'canary', 'x-b': 'nope' })).toBe('404');
    expect(await who('/v?ver=1', { 'x-env': 'canary', 'x-b': 'nope' })).toBe('404');
    expect(await who('/v?region=eu', { cookie: 'a=b; user=vip-7' })).toBe('v-vip');
    expect(await who('/v?region=asia', { cookie: 'user=vip-7', 'x-b': 'nope' })).toBe('404');
    expect(await who('/v?debug=yes', { 'user-agent': 'my-bot/1.0', 'x-b': 'nope' })).toBe('v-ci');
    expect(await who('/v?debug=no', { 'user-agent': 'my-bot/1.0', 'x-b': 'nope' })).toBe('404');
    expect(await who('/v?a=1', { 'x-b': 'nope' })).toBe('v-or');
    expect(await who('/v', { 'x-b': 'other' })).toBe('v-or');
    expect(await who('/v', { 'x-b': 'nope' })).toBe('404');
  });

  test('status 0 routes are ignored; unmatched requests get the exact APISIX 404 body', async () => {
    await route('st-off', { uri: '/st', status: 0 });
    const r = await http.call(gw.url + '/st');
    expect(r.status).toBe(404);
    expect(r.text).toBe('{"error_msg":"404 Route Not Found"}\n');
    expect(r.headers['content-type']).toBe('application/json');
    await route('st-off', { uri: '/st', status: 1 });
    expect(await who('/st')).toBe('st-off');
    const c = await curl([`${gw.url}/nothing/here`]);
    expect(c.status).toBe(404);
    expect(c.body).toBe('{"error_msg":"404 Route Not Found"}\n');
  });
});
