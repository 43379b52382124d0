// Security regressions (issue 20, defects 1-3, 5-7): path tricks, host tricks, duplicate Host, absolute-form
// targets, prototype keys, spoofed client-address headers and request smuggling on both HTTP/1.1 engines,
// against nginx as the upstream, which would serve the protected file if the gateway let the request through.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { rawRequest, startNginxFiles, type NginxUpstream } from '../helpers/nginx.ts';
import { raw } from '../http1/raw.ts';

const SECRET = 'TOP-SECRET-CONTENT';
let gw: TestGateway;
let nginx: NginxUpstream;

const get = (target: string, host = 'gw.test', extra = '') =>
  rawRequest(gw.port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`);

beforeAll(async () => {
  nginx = await startNginxFiles({
    'public/x': 'public',
    'admin/x': SECRET,
    'keyed/x': SECRET,
    'hosted/x': SECRET,
    'allow/x': SECRET,
    'realip/x': SECRET,
    'realip-trusted/x': SECRET,
    'x': 'root',
  });
  gw = await startTestGateway();
  const upstream = { type: 'roundrobin', nodes: { [`127.0.0.1:${nginx.port}`]: 1 } };
  await gw.put('/routes/public', { uri: '/public/*', upstream });
  await gw.put('/routes/admin', { uri: '/admin/*', upstream, plugins: { 'ip-restriction': { blacklist: ['127.0.0.0/8'] } } });
  await gw.put('/routes/keyed', { uri: '/keyed/*', upstream, plugins: { 'key-auth': {} } });
  await gw.put('/routes/hosted', { uri: '/hosted/*', hosts: ['secret.local'], upstream, plugins: { 'ip-restriction': { blacklist: ['127.0.0.0/8'] } } });
  await gw.put('/routes/any-host', { uri: '/hosted/*', upstream, priority: -1 });
  // Only 203.0.113.7 may read /allow/*: the test client is 127.0.0.1 and can only claim that address in headers.
  const onlyDoc = { 'ip-restriction': { whitelist: ['203.0.113.7'] } };
  await gw.put('/routes/allow', { uri: '/allow/*', upstream, plugins: onlyDoc });
  await gw.put('/routes/realip', { uri: '/realip/*', upstream, plugins: { ...onlyDoc, 'real-ip': { source: 'http_x_forwarded_for', trusted_addresses: ['10.0.0.0/8'], recursive: true } } });
  await gw.put('/routes/realip-x', { uri: '/realip-x/*', upstream, plugins: { ...onlyDoc, 'real-ip': { source: 'http_x_real_ip', trusted_addresses: ['192.168.0.0/16'] } } });
  // Control: a proxy the operator trusts (this client) may supply the address, so the header is not ignored.
  await gw.put('/routes/realip-trusted', { uri: '/realip-trusted/*', upstream, plugins: { ...onlyDoc, 'real-ip': { source: 'http_x_forwarded_for', trusted_addresses: ['127.0.0.1'] } } });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await nginx?.stop();
});

describe('path normalization before routing', () => {
  it('the open route serves its own content (control)', async () => {
    const r = await get('/public/x');
    expect(r.status).toBe(200);
    expect(r.body).toBe('public');
  });

  it.each([
    '/public/../admin/x',
    '/public/%2e%2e/admin/x',
    '/public/%2E%2E/admin/x',
    '/public%2F..%2Fadmin%2Fx',
    '/public/..%2fadmin/x',
    '/public/./../admin/x',
    '//public//..//admin/x',
    '/public/x/../../admin/x',
    '/admin/./x',
    '//admin/x',
    '/%61dmin/x',
  ])('%s is matched as /admin/* and refused by its ip-restriction', async (target) => {
    const r = await get(target);
    expect(r.status).toBe(403);
    expect(r.body).not.toContain(SECRET);
  });

  it.each(['/public/../keyed/x', '/public/%2e%2e/keyed/x', '/public%2F..%2Fkeyed%2Fx'])('%s needs the key of /keyed/*', async (target) => {
    const r = await get(target);
    expect(r.status).toBe(401);
    expect(r.body).not.toContain(SECRET);
  });

  it.each(['/../admin/x', '/public/../../admin/x', '/public/%zz', '/public/%00x'])('%s is a bad request', async (target) => {
    const r = await get(target);
    expect(r.status).toBe(400);
  });

  it('a normalized path is forwarded as matched (upstream sees /public/x)', async () => {
    const r = await get('/admin/../public/./x');
    expect(r.status).toBe(200);
    expect(r.body).toBe('public');
  });
});

describe('host normalization', () => {
  it.each(['secret.local', 'secret.local.', 'SECRET.Local', 'secret.local.:80', 'Secret.Local.:9080'])('Host %s reaches the host route', async (host) => {
    const r = await get('/hosted/x', host);
    expect(r.status).toBe(403);
    expect(r.body).not.toContain(SECRET);
  });

  it('another host falls through to the host-less route (control)', async () => {
    const r = await get('/hosted/x', 'other.local');
    expect(r.status).toBe(200);
    expect(r.body).toBe(SECRET);
  });

  it('two Host headers are a bad request', async () => {
    const r = await rawRequest(gw.port, 'GET /hosted/x HTTP/1.1\r\nHost: other.local\r\nHost: secret.local\r\nConnection: close\r\n\r\n');
    expect(r.status).toBe(400);
  });

  it('HTTP/1.1 without Host is a bad request', async () => {
    const r = await rawRequest(gw.port, 'GET /public/x HTTP/1.1\r\nConnection: close\r\n\r\n');
    expect(r.status).toBe(400);
  });

  it('an absolute-form target is routed by its authority (nginx accepts it)', async () => {
    const r = await get('http://secret.local/hosted/x', 'other.local');
    expect(r.status).toBe(403);
    const ok = await get('http://other.local/public/x', 'secret.local');
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('public');
  });
});

describe('Admin API prototype keys and hostile bodies', () => {
  it('a __proto__ sub-path PATCH is refused and pollutes nothing', async () => {
    await gw.put('/routes/p1', { uri: '/p1', upstream: { type: 'roundrobin', nodes: { '127.0.0.1:1': 1 } } });
    const r = await gw.admin('PATCH', '/routes/p1/__proto__/polluted', '"yes"');
    expect(r.status).toBe(400);
    expect(r.body.error_msg).toContain('__proto__');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // Later writes still validate.
    const ok = await gw.admin('PUT', '/routes/p2', { uri: '/p2', upstream: { type: 'roundrobin', nodes: { '127.0.0.1:1': 1 } } });
    expect(ok.status).toBe(201);
  });

  it.each([
    ['nodes', '{"uri":"/p3","upstream":{"type":"roundrobin","nodes":{"__proto__":{"127.0.0.1:1":1}}}}'],
    ['plugins', '{"uri":"/p3","plugins":{"__proto__":{"x":1}},"upstream":{"type":"roundrobin","nodes":{"127.0.0.1:1":1}}}'],
    ['constructor', '{"uri":"/p3","labels":{"constructor":"x"},"upstream":{"type":"roundrobin","nodes":{"127.0.0.1:1":1}}}'],
  ])('an object with a forbidden key inside (%s) is refused, nothing written', async (_name, body) => {
    const r = await gw.admin('PUT', '/routes/p3', body);
    expect(r.status).toBe(400);
    expect(r.body.error_msg).toMatch(/^invalid request body: forbidden key/);
    expect((await gw.admin('GET', '/routes/p3')).status).toBe(404);
  });

  it('a PATCH merge body with __proto__ is refused', async () => {
    const r = await gw.admin('PATCH', '/routes/p1', '{"__proto__":{"polluted":"yes"}}');
    expect(r.status).toBe(400);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('JSON nested 5,000 levels gets 400, not a server error', async () => {
    const deep = `{"uri":"/deep","labels":${'['.repeat(5000)}${']'.repeat(5000)}}`;
    const r = await gw.admin('PUT', '/routes/deep', deep);
    expect(r.status).toBe(400);
    expect(r.body.error_msg).toContain('nesting deeper than');
  });

  it('a 10 MB body gets an answer (APISIX: 400 with the size), not a reset', async () => {
    const big = `{"uri":"/big","desc":"${'x'.repeat(10 * 1024 * 1024)}"}`;
    const r = await gw.admin('PUT', '/routes/big', big);
    expect(r.status).toBe(400);
    expect(r.body.error_msg).toContain('is greater than the maximum size');
  });
});

describe('spoofed client-address headers (trusted_addresses does not cover the client)', () => {
  const SPOOFS = [
    'X-Forwarded-For: 203.0.113.7\r\n',
    'X-Real-IP: 203.0.113.7\r\n',
    'Forwarded: for=203.0.113.7\r\n',
    'X-Forwarded-For: 203.0.113.7\r\nX-Real-IP: 203.0.113.7\r\n',
    'X-Forwarded-For: 203.0.113.7, 203.0.113.7\r\n',
    'X-Forwarded-For: 10.1.1.1\r\nX-Forwarded-For: 203.0.113.7\r\n',
    'X-Forwarded-For: 203.0.113.7, 10.1.1.1\r\n',
    'True-Client-IP: 203.0.113.7\r\nX-Client-IP: 203.0.113.7\r\n',
  ];

  it.each(SPOOFS)('ip-restriction alone ignores %j', async (spoof) => {
    const r = await get('/allow/x', 'gw.test', spoof);
    expect(r.status).toBe(403);
    expect(r.body).not.toContain(SECRET);
  });

  it.each(SPOOFS)('real-ip trusting 10.0.0.0/8 (client 127.0.0.1 not in it) ignores %j', async (spoof) => {
    const r = await get('/realip/x', 'gw.test', spoof);
    expect(r.status).toBe(403);
    expect(r.body).not.toContain(SECRET);
  });

  it('real-ip on X-Real-IP trusting 192.168.0.0/16 ignores it from this client', async () => {
    const r = await get('/realip-x/x', 'gw.test', 'X-Real-IP: 203.0.113.7\r\n');
    expect(r.status).toBe(403);
  });

  it('control: with the client trusted, the same header is taken (the spoof cases above are not vacuous)', async () => {
    const r = await get('/realip-trusted/x', 'gw.test', 'X-Forwarded-For: 203.0.113.7\r\n');
    expect(r.status).toBe(200);
    expect(r.body).toBe(SECRET);
    expect((await get('/realip-trusted/x', 'gw.test')).status).toBe(403);
  });
});

describe('request smuggling aimed at the protected path, both HTTP/1.1 engines', () => {
  const engines: Record<string, TestGateway> = {};
  beforeAll(async () => {
    // Each engine chosen by config: a suite-wide SWITCHYARD_HTTP1_ENGINE would make both the same.
    const saved = process.env.SWITCHYARD_HTTP1_ENGINE;
    delete process.env.SWITCHYARD_HTTP1_ENGINE;
    try {
      for (const engine of ['node', 'socket']) engines[engine] = await startTestGateway({ config: { switchyard: { http1_engine: engine } } });
    } finally {
      if (saved !== undefined) process.env.SWITCHYARD_HTTP1_ENGINE = saved;
    }
    const upstream = { type: 'roundrobin', nodes: { [`127.0.0.1:${nginx.port}`]: 1 } };
    for (const g of Object.values(engines)) {
      await g.put('/routes/public', { uri: '/public/*', upstream });
      await g.put('/routes/admin', { uri: '/admin/*', upstream, plugins: { 'ip-restriction': { blacklist: ['127.0.0.0/8'] } } });
    }
  }, 60_000);
  afterAll(async () => {
    await Promise.all(Object.values(engines).map((g) => g.close()));
  });

  const SMUGGLED = 'GET /admin/x HTTP/1.1\r\nHost: gw.test\r\n\r\n';
  const CASES: [string, string][] = [
    ['CL.TE', `POST /public/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: ${5 + SMUGGLED.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`],
    ['TE.CL', `POST /public/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`],
    ['TE.TE (obfuscated second TE)', `POST /public/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\nContent-Length: 4\r\n\r\n0\r\n\r\n${SMUGGLED}`],
    ['CL.TE with xchunked', `POST /public/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: ${5 + SMUGGLED.length}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`],
    ['CL.TE with a space before the colon', `POST /public/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: ${5 + SMUGGLED.length}\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`],
    ['two Content-Length', `POST /public/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`],
    ['chunk extension hiding a request', `POST /public/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n0;\n${SMUGGLED}\r\n\r\n`],
  ];

  for (const engine of ['node', 'socket']) {
    it.each(CASES)(`${engine} engine: %s never reaches /admin/x`, async (_name, attack) => {
      const g = engines[engine]!;
      const r = await raw(g.port, [attack], { idleMs: 1000 });
      expect(r.text).not.toContain(SECRET);
      expect(r.statuses[0]?.slice(9, 12)).toBe('400');
      expect(r.closedByPeer).toBe(true);
      // The gateway's upstream connections are not desynchronized: the next client gets its own answer.
      const next = await rawRequest(g.port, 'GET /public/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n');
      expect(next.status).toBe(200);
      expect(next.body).toBe('public');
    });

    it(`${engine} engine: a smuggled request inside a valid body is only body to nginx`, async () => {
      // Framing the gateway accepts (CL only): the "request" in the body must reach nginx as body bytes of the
      // first request on that upstream connection, never as a second request there.
      const g = engines[engine]!;
      const attack = `POST /public/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`;
      const r = await raw(g.port, [attack, 'GET /public/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n'], { idleMs: 1500, gapMs: 50 });
      expect(r.text).not.toContain(SECRET);
      expect(r.statuses.length).toBe(2);
    });
  }
});
