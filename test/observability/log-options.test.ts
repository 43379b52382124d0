// Logger options that used to be accepted and ignored, each driven through a real gateway to real receivers
// (node:http / node:https on loopback, a file): include_req_body_expr / include_resp_body_expr decide per
// request whether a body is logged; max_req_body_bytes / max_resp_body_bytes bound it (the upstream still
// gets everything); log_format_extra (conf, else plugin_metadata) adds fields to the full log without
// replacing default ones, and to splunk-hec-logging's fixed event; plugin_metadata max_pending_entries bounds
// the entries waiting across all processors of a plugin; ssl_verify of http-logger and clickhouse-logger
// reaches the TLS handshake; map-valued encrypt_fields (loki-logger / elasticsearch-logger `headers`) are
// stored as ciphertext per value and used as plaintext.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpLoggerPlugin } from '../../src/plugin/builtin/http-logger.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { makeTestCa, type TestCa } from '../helpers/grpc.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { confError } from '../plugin/helpers.ts';
import { scrape, value } from './prom-text.ts';

interface Received {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const RESPONSE_BODY = 'RESPONSE-BODY-0123456789';

/** waitFor for a value that is absent (undefined) until it arrives. */
async function until<T>(check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  return (await waitFor(check)) as T;
}

function listen(server: http.Server | https.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function close(server: http.Server | https.Server | undefined): Promise<void> {
  if (server === undefined) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A receiver recording every request; paths under /hold/ stay unanswered until release(). */
function receiver(got: Received[], held: http.ServerResponse[]) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const url = req.url ?? '/';
      got.push({ url, headers: req.headers, body });
      if (url.startsWith('/hold/')) {
        held.push(res);
        return;
      }
      res.writeHead(url.startsWith('/loki/') ? 204 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ text: 'Success', code: 0 }));
    });
  };
}

describe('logger options through a gateway', () => {
  let gw: TestGateway;
  let upstream: http.Server;
  let sink: http.Server;
  let tlsSink: https.Server;
  let ca: TestCa;
  let base = '';
  let tlsBase = '';
  let metricsUrl = '';
  let logDir: { dir: string; cleanup(): Promise<void> };
  const upstreamGot: string[] = [];
  const got: Received[] = [];
  const held: http.ServerResponse[] = [];
  const at = (prefix: string) => got.filter((r) => r.url.startsWith(prefix));
  const dropped = async (name: string) => value(await scrape(metricsUrl), 'apisix_batch_process_dropped_entries_total', { name });
  const send = (p: string, init: RequestInit = {}) => fetch(gw.url + p, init).then(async (r) => ({ status: r.status, body: await r.text() }));

  beforeAll(async () => {
    upstream = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        upstreamGot.push(body);
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(RESPONSE_BODY);
      });
    });
    sink = http.createServer(receiver(got, held));
    ca = await makeTestCa();
    // A certificate from a CA nobody trusts: only ssl_verify false gets through.
    tlsSink = https.createServer({ key: ca.key, cert: ca.cert }, receiver(got, held));
    const [upPort, sinkPort, tlsPort] = await Promise.all([listen(upstream), listen(sink), listen(tlsSink)]);
    base = `http://127.0.0.1:${sinkPort}`;
    tlsBase = `https://127.0.0.1:${tlsPort}`;
    logDir = await tempDir('swy-logopts-');
    gw = await startTestGateway();
    metricsUrl = `http://127.0.0.1:${(gw.config.plugin_attr.prometheus!.export_addr as { port: number }).port}/apisix/prometheus/metrics`;
    const up = { nodes: { [`127.0.0.1:${upPort}`]: 1 } };
    const one = { batch_max_size: 1 };
    await gw.put('/routes/expr', {
      uri: '/expr/*',
      upstream: up,
      plugins: {
        prometheus: {},
        'http-logger': {
          uri: `${base}/log/expr`,
          include_req_body: true,
          include_req_body_expr: [['arg_log', '==', 'yes']],
          include_resp_body: true,
          include_resp_body_expr: [['http_x_log_resp', '==', '1']],
          max_req_body_bytes: 5,
          max_resp_body_bytes: 8,
          ...one,
        },
      },
    });
    await gw.put('/routes/file', {
      uri: '/file/*',
      upstream: up,
      plugins: {
        'file-logger': {
          path: path.join(logDir.dir, 'access.log'),
          include_req_body: true,
          include_req_body_expr: [['request_method', '==', 'PUT']],
          max_req_body_bytes: 3,
          include_resp_body: true,
          max_resp_body_bytes: 4,
        },
      },
    });
    await gw.put('/routes/extra', {
      uri: '/extra/*',
      upstream: up,
      plugins: { 'http-logger': { uri: `${base}/log/extra`, log_format_extra: { trace: '$http_x_trace', latency: 'not-a-number', nested: { m: '$request_method' } }, ...one } },
    });
    await gw.put('/routes/extra-meta', { uri: '/extrameta/*', upstream: up, plugins: { 'http-logger': { uri: `${base}/log/extrameta`, ...one } } });
    await gw.put('/routes/extra-fmt', {
      uri: '/extrafmt/*',
      upstream: up,
      plugins: { 'http-logger': { uri: `${base}/log/extrafmt`, log_format: { path: '$uri' }, log_format_extra: { trace: '$http_x_trace' }, ...one } },
    });
    await gw.put('/plugin_metadata/http-logger', { log_format_extra: { from_meta: '$uri' } });
    await gw.put('/routes/splunk', {
      uri: '/splunk/*',
      upstream: up,
      plugins: {
        'splunk-hec-logging': { endpoint: { uri: `${base}/services/collector`, token: 't' }, log_format_extra: { trace: '$http_x_trace', latency: 'x' }, ...one },
      },
    });
    await gw.put('/routes/http-tls', {
      uri: '/httptls/*',
      upstream: up,
      plugins: {
        prometheus: {},
        'http-logger': { uri: `${tlsBase}/log/http-noverify`, ...one },
      },
    });
    await gw.put('/routes/http-tls-verify', {
      uri: '/httptlsverify/*',
      upstream: up,
      plugins: { 'http-logger': { uri: `${tlsBase}/log/http-verify`, ssl_verify: true, name: 'http-verify', ...one } },
    });
    const ch = { user: 'u', password: 'p', database: 'd', logtable: 'access', ...one };
    await gw.put('/routes/ch-tls', {
      uri: '/chtls/*',
      upstream: up,
      plugins: { 'clickhouse-logger': { ...ch, endpoint_addr: `${tlsBase}/ch-noverify`, ssl_verify: false, include_req_body: true, max_req_body_bytes: 4 } },
    });
    await gw.put('/routes/ch-tls-verify', {
      uri: '/chtlsverify/*',
      upstream: up,
      plugins: { 'clickhouse-logger': { ...ch, endpoint_addr: `${tlsBase}/ch-verify`, name: 'ch-verify' } },
    });
    await gw.put('/plugin_metadata/loki-logger', { max_pending_entries: 3 });
    for (const r of ['a', 'b']) {
      await gw.put(`/routes/pending-${r}`, {
        uri: `/pending/${r}`,
        upstream: up,
        plugins: { 'loki-logger': { endpoint_addrs: [base], endpoint_uri: `/hold/${r}`, timeout: 60_000, name: `pending-${r}`, ...one } },
      });
    }
  }, 30_000);

  afterAll(async () => {
    for (const res of held) res.end();
    await gw?.close();
    await Promise.all([close(upstream), close(sink), close(tlsSink)]);
    await ca?.cleanup();
    await logDir?.cleanup();
  });

  it('include_*_body_expr decide per request; max_*_body_bytes bound what is logged, not what is proxied', async () => {
    const yes = await send('/expr/a?log=yes', { method: 'POST', body: 'hello world', headers: { 'x-log-resp': '1' } });
    expect(yes).toEqual({ status: 200, body: RESPONSE_BODY });
    const no = await send('/expr/b?log=no', { method: 'POST', body: 'not for the log' });
    expect(no).toEqual({ status: 200, body: RESPONSE_BODY });
    expect(upstreamGot).toContain('hello world');
    expect(upstreamGot).toContain('not for the log');
    const entries = await until(() => {
      const e = at('/log/expr').map((r) => JSON.parse(r.body));
      return e.length === 2 ? e : undefined;
    });
    const a = entries.find((e) => e.request.uri === '/expr/a?log=yes');
    const b = entries.find((e) => e.request.uri === '/expr/b?log=no');
    expect(a.request.body).toBe('hello');
    expect(a.response.body).toBe(RESPONSE_BODY.slice(0, 8));
    expect(b.request).not.toHaveProperty('body');
    expect(b.response).not.toHaveProperty('body');
  });

  it('file-logger evaluates include_req_body_expr and bounds both bodies', async () => {
    expect((await send('/file/put', { method: 'PUT', body: 'abcdef' })).status).toBe(200);
    expect((await send('/file/post', { method: 'POST', body: 'abcdef' })).status).toBe(200);
    const lines = await until(async () => {
      const text = await readFile(path.join(logDir.dir, 'access.log'), 'utf8').catch(() => '');
      const l = text.split('\n').filter((x) => x !== '').map((x) => JSON.parse(x));
      return l.length === 2 ? l : undefined;
    });
    const put = lines.find((e) => e.request.method === 'PUT');
    const post = lines.find((e) => e.request.method === 'POST');
    expect(put.request.body).toBe('abc');
    expect(post.request).not.toHaveProperty('body');
    expect(put.response.body).toBe('RESP');
    expect(post.response.body).toBe('RESP');
  });

  it('log_format_extra adds fields to the full log (conf first, else plugin_metadata), never with log_format', async () => {
    const h = { 'x-trace': 'tr-42' };
    await send('/extra/1', { headers: h });
    await send('/extrameta/1', { headers: h });
    await send('/extrafmt/1', { headers: h });
    const one = (p: string) => until(() => got.find((r) => r.url === p)).then((r) => JSON.parse(r.body));
    const [conf, meta, fmt] = await Promise.all([one('/log/extra'), one('/log/extrameta'), one('/log/extrafmt')]);
    expect(conf.trace).toBe('tr-42');
    expect(conf.nested).toEqual({ m: 'GET' });
    expect(typeof conf.latency).toBe('number'); // a default field is never replaced
    expect(conf.request.uri).toBe('/extra/1');
    expect(conf).not.toHaveProperty('from_meta'); // the conf's log_format_extra wins over the metadata's
    expect(meta.from_meta).toBe('/extrameta/1');
    expect(meta.route_id).toBe('extra-meta');
    expect(fmt).toEqual({ path: '/extrafmt/1', route_id: 'extra-fmt' });
  });

  it('splunk-hec-logging adds log_format_extra fields its fixed event lacks', async () => {
    await send('/splunk/1', { headers: { 'x-trace': 'tr-7' } });
    const ev = await until(() => (at('/services/collector').length === 1 ? JSON.parse(at('/services/collector')[0]!.body) : undefined));
    expect(ev.event.trace).toBe('tr-7');
    expect(typeof ev.event.latency).toBe('number');
    expect(ev.event.request_url).toMatch(/\/splunk\/1$/);
  });

  it('ssl_verify reaches the handshake: false accepts an untrusted certificate, true refuses it', async () => {
    await send('/httptls/1');
    await send('/httptlsverify/1');
    await send('/chtls/1', { method: 'POST', body: 'abcdefgh' });
    await send('/chtlsverify/1');
    const http1 = await until(() => at('/log/http-noverify')[0]);
    expect(JSON.parse(http1.body).request.uri).toBe('/httptls/1');
    const ch = await until(() => at('/ch-noverify')[0]);
    expect(ch.headers['x-clickhouse-user']).toBe('u');
    const row = JSON.parse(ch.body.replace(/^INSERT INTO access FORMAT JSONEachRow /, ''));
    expect(row.request.body).toBe('abcd');
    await expect.poll(() => dropped('http-verify'), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => dropped('ch-verify'), { timeout: 10_000 }).toBe(1);
    expect(at('/log/http-verify')).toHaveLength(0);
    expect(at('/ch-verify')).toHaveLength(0);
  });

  it('max_pending_entries bounds the entries waiting across all processors of the plugin', async () => {
    for (let i = 0; i < 2; i++) expect((await send('/pending/a')).status).toBe(200);
    await waitFor(() => at('/hold/a').length === 2 || undefined);
    // Two waiting from route a, so route b gets one slot of the three; its other entries are discarded.
    for (let i = 0; i < 4; i++) expect((await send('/pending/b')).status).toBe(200);
    await expect.poll(() => dropped('pending-b'), { timeout: 10_000 }).toBe(3);
    await waitFor(() => at('/hold/b').length === 1 || undefined);
    expect(await dropped('pending-a')).toBe(0);
    // Answered entries leave the backlog: new ones are accepted again.
    for (const res of held.splice(0)) {
      res.writeHead(204);
      res.end();
    }
    await waitFor(async () => {
      await send('/pending/a');
      return at('/hold/a').length >= 3 || undefined;
    });
    expect(await dropped('pending-a')).toBe(0);
  });

  it('http-logger rejects a body expression that does not compile, as APISIX', () => {
    expect(confError(httpLoggerPlugin, { uri: 'http://127.0.0.1:1', include_req_body_expr: [['arg_x', 'nope', 1]] })).toMatch(/include_req_body_expr/);
  });
});

describe('map-valued encrypt_fields (elasticsearch-logger and loki-logger headers)', () => {
  const KEY = 'Zq8Vd3kP0wLx7NcR2tYb5HmJ9sFa4GeU'; // 32 bytes: AES-256-CBC, IV = its first 16 bytes (APISIX)
  const aes = (k: string) => ({ key: Buffer.from(k), iv: Buffer.from(k).subarray(0, 16) });
  const encrypt = (s: string) => {
    const { key, iv } = aes(KEY);
    const c = createCipheriv('aes-256-cbc', key, iv);
    return Buffer.concat([c.update(s, 'utf8'), c.final()]).toString('base64');
  };
  const decrypt = (b64: string) => {
    const { key, iv } = aes(KEY);
    const d = createDecipheriv('aes-256-cbc', key, iv);
    return Buffer.concat([d.update(Buffer.from(b64, 'base64')), d.final()]).toString('utf8');
  };
  let gw: TestGateway;
  let upstream: http.Server;
  let sink: http.Server;
  let base = '';
  const got: Received[] = [];

  beforeAll(async () => {
    upstream = http.createServer((_req, res) => res.end('ok'));
    sink = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        got.push({ url: req.url ?? '/', headers: req.headers, body });
        if (req.method === 'GET') {
          res.writeHead(200, { 'content-type': 'application/json' });
          return res.end(JSON.stringify({ version: { number: '8.15.0' } }));
        }
        res.writeHead(req.url?.startsWith('/loki') ? 204 : 200, { 'content-type': 'application/json' });
        res.end('{"errors":false,"items":[]}');
      });
    });
    const [upPort, sinkPort] = await Promise.all([listen(upstream), listen(sink)]);
    base = `http://127.0.0.1:${sinkPort}`;
    const up = { nodes: { [`127.0.0.1:${upPort}`]: 1 } };
    // A route APISIX wrote: its loki-logger header value is APISIX ciphertext under the same keyring.
    gw = await startTestGateway({
      config: { apisix: { data_encryption: { keyring: [KEY] } } },
      standalone: {
        routes: [
          {
            id: 'from-apisix',
            uri: '/apisix/*',
            upstream: up,
            plugins: { 'loki-logger': { endpoint_addrs: [base], endpoint_uri: '/loki/apisix', headers: { 'X-Loki-Token': encrypt('written-by-apisix') }, batch_max_size: 1 } },
          },
        ],
      },
    });
    await gw.put('/routes/enc', {
      uri: '/enc/*',
      upstream: up,
      plugins: {
        'loki-logger': { endpoint_addrs: [base], endpoint_uri: '/loki/push', headers: { 'X-Loki-Token': 'loki-secret-1', 'X-Org': 'loki-secret-2' }, batch_max_size: 1 },
        'elasticsearch-logger': { endpoint_addr: `${base}/es`, field: { index: 'i' }, headers: { 'X-Es-Token': 'es-secret-3' }, batch_max_size: 1 },
        'http-logger': { uri: `${base}/http`, auth_header: 'Bearer http-secret-4', batch_max_size: 1 },
      },
    });
  }, 30_000);

  afterAll(async () => {
    await gw?.close();
    await Promise.all([close(upstream), close(sink)]);
  });

  it('stores each header value as ciphertext, GET and the data plane see plaintext', async () => {
    const text = await readFile(path.join(gw.dir, 'apisix.yaml'), 'utf8');
    for (const secret of ['loki-secret-1', 'loki-secret-2', 'es-secret-3', 'http-secret-4']) expect(text).not.toContain(secret);
    const stored = (parse(text.replace(/#END\s*$/, '')) as { routes: { id: string; plugins: Record<string, any> }[] }).routes.find((r) => r.id === 'enc')!;
    expect(decrypt(stored.plugins['loki-logger'].headers['X-Loki-Token'])).toBe('loki-secret-1');
    expect(decrypt(stored.plugins['loki-logger'].headers['X-Org'])).toBe('loki-secret-2');
    expect(decrypt(stored.plugins['elasticsearch-logger'].headers['X-Es-Token'])).toBe('es-secret-3');
    expect(decrypt(stored.plugins['http-logger'].auth_header)).toBe('Bearer http-secret-4');

    const get = await gw.admin('GET', '/routes/enc');
    expect(get.status).toBe(200);
    expect(get.body.value.plugins['loki-logger'].headers).toEqual({ 'X-Loki-Token': 'loki-secret-1', 'X-Org': 'loki-secret-2' });

    expect((await fetch(`${gw.url}/enc/1`)).status).toBe(200);
    expect((await fetch(`${gw.url}/apisix/1`)).status).toBe(200);
    const loki = await until(() => got.find((r) => r.url === '/loki/push'));
    expect(loki.headers['x-loki-token']).toBe('loki-secret-1');
    expect(loki.headers['x-org']).toBe('loki-secret-2');
    const es = await until(() => got.find((r) => r.url === '/es/_bulk'));
    expect(es.headers['x-es-token']).toBe('es-secret-3');
    const h = await until(() => got.find((r) => r.url === '/http'));
    expect(h.headers.authorization).toBe('Bearer http-secret-4');
    const fromApisix = await until(() => got.find((r) => r.url === '/loki/apisix'));
    expect(fromApisix.headers['x-loki-token']).toBe('written-by-apisix');
  });
});
