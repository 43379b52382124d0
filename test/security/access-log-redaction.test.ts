// Issue 20 item 7: credentials sent as query arguments, and Authorization / Cookie values, never reach the
// access log. Unit level on redactQuery and AccessLog.line with chains compiled from the real auth plugins, and
// end to end through the gateway with the access log written to a file.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/config/resources.ts';
import { AccessLog, REDACTED, redactQuery } from '../../src/pipeline/access-log.ts';
import { RequestContext } from '../../src/pipeline/context.ts';
import { enablePlugins, setupBuiltinPlugins } from '../../src/plugin/builtin/index.ts';
import { PluginChain } from '../../src/plugin/chain.ts';
import { PluginRegistry } from '../../src/plugin/registry.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { envFor } from '../plugin/helpers.ts';

describe('redactQuery', () => {
  it('replaces the values of credential arguments and nothing else', () => {
    expect(redactQuery('/a/b')).toBe('/a/b');
    expect(redactQuery('/a?x=1&y=2')).toBe('/a?x=1&y=2');
    expect(redactQuery('/a?apikey=s3cr3t')).toBe(`/a?apikey=${REDACTED}`);
    expect(redactQuery('/a?x=1&apikey=s3cr3t&y=2&jwt=eyJ.x.y')).toBe(`/a?x=1&apikey=${REDACTED}&y=2&jwt=${REDACTED}`);
    // Repeated, mixed case, percent-encoded and plus-encoded names: the plugins read decoded names.
    expect(redactQuery('/a?APIKEY=1&apikey=2&api%6Bey=3&access%5Ftoken=4&api+key=5')).toBe(
      `/a?APIKEY=${REDACTED}&apikey=${REDACTED}&api%6Bey=${REDACTED}&access%5Ftoken=${REDACTED}&api+key=5`,
    );
    // Empty value, no value, empty segments, malformed escapes, a fragment (Referer).
    expect(redactQuery('/a?apikey=&flag&&token&api_key=z#frag?apikey=keep')).toBe(`/a?apikey=${REDACTED}&flag&&token&api_key=${REDACTED}#frag?apikey=keep`);
    expect(redactQuery('/a?%E0%A4%A=1&password=p')).toBe(`/a?%E0%A4%A=1&password=${REDACTED}`);
    expect(redactQuery('https://site.example/page?client_secret=abc&q=1')).toBe(`https://site.example/page?client_secret=${REDACTED}&q=1`);
    expect(redactQuery('/a?k=1', new Set(['k']))).toBe(`/a?k=${REDACTED}`);
  });

  it('stays linear on hostile queries', () => {
    const hostile = '/a?' + 'x&'.repeat(200_000) + 'apikey=s';
    const t = performance.now();
    const out = redactQuery(hostile);
    const ms = performance.now() - t;
    expect(out.endsWith(`apikey=${REDACTED}`)).toBe(true);
    console.log(`redactQuery over a ${hostile.length}-byte query: ${ms.toFixed(1)} ms`);
    expect(ms).toBeLessThan(2000); // loose: a quadratic scan takes minutes here
  });
});

describe('AccessLog.line', () => {
  const registry = new PluginRegistry();
  setupBuiltinPlugins(registry);
  enablePlugins(registry, ['key-auth', 'jwt-auth', 'multi-auth', 'basic-auth', 'proxy-rewrite'], []);
  const chain = (plugins: JsonObject) => PluginChain.compile(plugins, registry, 'http', envFor(), (n, m) => {
    throw new Error(`${n}: ${m}`);
  });

  function ctx(rawUri: string, headers: Record<string, string> = {}): RequestContext {
    const q = rawUri.indexOf('?');
    return new RequestContext({
      method: 'GET',
      path: q < 0 ? rawUri : rawUri.slice(0, q),
      forwardPath: q < 0 ? rawUri : rawUri.slice(0, q),
      query: q < 0 ? '' : rawUri.slice(q + 1),
      rawUri,
      headers: { host: 'h', ...headers },
      remoteAddr: '127.0.0.1',
      remotePort: 1,
      serverAddr: '127.0.0.1',
      serverPort: 2,
      scheme: 'http',
      httpVersion: '1.1',
      host: 'h',
      tls: null,
    });
  }

  it("redacts the arguments the route's auth plugins read, including inside multi-auth", () => {
    const c = ctx('/p?k=key-secret&tok=jwt-secret&mk=multi-secret&apikey=default-secret&q=visible', {
      referer: 'https://app.example/?k=ref-secret',
      authorization: 'Basic dXNlcjpwYXNzd29yZA==',
      cookie: 'session=cookie-secret',
    });
    const routeChain = chain({
      'key-auth': { query: 'k' },
      'jwt-auth': { query: 'tok' },
      'multi-auth': { auth_plugins: [{ 'key-auth': { query: 'mk' } }, { 'basic-auth': {} }] },
    });
    const line = JSON.parse(AccessLog.line(c, 10, routeChain)) as Record<string, unknown>;
    expect(line.request_uri).toBe(`/p?k=${REDACTED}&tok=${REDACTED}&mk=${REDACTED}&apikey=${REDACTED}&q=visible`);
    expect(line.http_referer).toBe(`https://app.example/?k=${REDACTED}`);
    const text = JSON.stringify(line);
    for (const secret of ['key-secret', 'jwt-secret', 'multi-secret', 'default-secret', 'ref-secret', 'dXNlcjpwYXNzd29yZA', 'cookie-secret']) {
      expect(text).not.toContain(secret);
    }
    // Without the chain the custom names are not known; the common names still are.
    const bare = JSON.parse(AccessLog.line(c, 10)) as Record<string, unknown>;
    expect(bare.request_uri).toBe(`/p?k=key-secret&tok=jwt-secret&mk=multi-secret&apikey=${REDACTED}&q=visible`);
  });

  it('leaves the arguments of non-auth plugins alone', () => {
    const c = ctx('/p?query=1&k=2');
    const line = JSON.parse(AccessLog.line(c, 0, chain({ 'proxy-rewrite': { uri: '/x' } }))) as Record<string, unknown>;
    expect(line.request_uri).toBe('/p?query=1&k=2');
  });
});

describe('access log through the gateway', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let logFile: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const t = await tempDir('swy-alog-');
    cleanup = t.cleanup;
    logFile = path.join(t.dir, 'access.log');
    gw = await startTestGateway({ config: { switchyard: { worker_processes: 1, access_log: { enable: true, path: logFile } } } });
    up = await startEcho('a');
    await gw.put('/consumers/jack', { username: 'jack', plugins: { 'key-auth': { key: 'jack-query-key-0001' } } });
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/1', { uri: '/ka/*', plugins: { 'key-auth': {} }, upstream });
    await gw.put('/routes/2', { uri: '/custom/*', plugins: { 'key-auth': { query: 'k' } }, upstream });
    await gw.put('/routes/3', { uri: '/open/*', upstream });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await cleanup?.();
  });

  async function logLines(n: number): Promise<Record<string, unknown>[]> {
    const got = await waitFor(async () => {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      const lines = text.split('\n').filter((l) => l !== '');
      return lines.length >= n ? lines.map((l) => JSON.parse(l) as Record<string, unknown>) : null;
    }, 10_000, 20);
    return got!;
  }

  it('keeps query credentials, Authorization and Cookie values out of the log', async () => {
    let r = await fetch(`${gw.url}/ka/x?apikey=jack-query-key-0001&page=2`, { headers: { referer: 'https://a.example/?apikey=jack-query-key-0001' } });
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    r = await fetch(`${gw.url}/open/y?token=bearer-in-query-0002`, {
      headers: { authorization: 'Bearer header-token-0003', cookie: 'sid=cookie-value-0004' },
    });
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    const lines = await logLines(2);
    const text = await readFile(logFile, 'utf8');
    for (const secret of ['jack-query-key-0001', 'bearer-in-query-0002', 'header-token-0003', 'cookie-value-0004']) expect(text).not.toContain(secret);
    const ka = lines.find((l) => l.route_id === '1')!;
    expect(ka.request_uri).toBe(`/ka/x?apikey=${REDACTED}&page=2`);
    expect(ka.http_referer).toBe(`https://a.example/?apikey=${REDACTED}`);
    expect(ka.consumer_name).toBe('jack');
    expect(lines.find((l) => l.route_id === '3')!.request_uri).toBe(`/open/y?token=${REDACTED}`);
  });

  // The pipeline passes the route's chain, so the auth plugins' own query names are redacted too.
  it("redacts a route's custom key-auth query name (pipeline passes the chain)", async () => {
    const r = await fetch(`${gw.url}/custom/z?k=jack-query-key-0001`);
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    const line = await waitFor(async () => (await logLines(1)).find((l) => l.route_id === '2') ?? null, 10_000, 20);
    expect(line!.request_uri).toBe(`/custom/z?k=${REDACTED}`);
  });
});
