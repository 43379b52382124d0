// HTTP log services against a receiver started here (node:http on loopback) that parses what each plugin
// puts on the wire: elasticsearch-logger's Bulk API NDJSON (with the version probe APISIX makes first),
// splunk-hec-logging's concatenated HEC events, loki-logger's push JSON, with their auth and tenant headers;
// driven by real requests through a gateway. A receiver answering errors shows the retry, then the drop
// counted by the Prometheus exporter; an HTTPS receiver with an untrusted certificate shows ssl_verify.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elasticsearchLoggerPlugin as esDef, IndexTemplate, strftime } from '../../src/plugin/builtin/elasticsearch-logger.ts';
import { lokiLoggerPlugin as lokiDef } from '../../src/plugin/builtin/loki-logger.ts';
import { splunkHecLoggingPlugin as splunkDef } from '../../src/plugin/builtin/splunk-hec-logging.ts';
import { MapVars } from '../../src/router/vars.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { makeTestCa, type TestCa } from '../helpers/grpc.ts';
import { waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { confError } from '../plugin/helpers.ts';
import { scrape, value } from './prom-text.ts';

interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Splits HEC's batch format (JSON objects back to back, no separator) into the objects. */
function splitConcatenated(text: string): any[] {
  const out: any[] = [];
  let depth = 0;
  let start = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === '}' && --depth === 0) out.push(JSON.parse(text.slice(start, i + 1)));
  }
  expect(depth).toBe(0);
  return out;
}

/** The Bulk API body as [action, document] pairs; every line, the last included, ends with a newline. */
function parseBulk(body: string): [any, any][] {
  expect(body.endsWith('\n')).toBe(true);
  const lines = body.slice(0, -1).split('\n').map((l) => JSON.parse(l));
  expect(lines.length % 2).toBe(0);
  const pairs: [any, any][] = [];
  for (let i = 0; i < lines.length; i += 2) pairs.push([lines[i], lines[i + 1]]);
  return pairs;
}

const basic = (user: string, pass: string) => 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');

describe('HTTP log services (elasticsearch-logger, splunk-hec-logging, loki-logger)', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let receiver: http.Server;
  let tlsReceiver: https.Server;
  let ca: TestCa;
  let base = '';
  let metricsUrl = '';
  const got: Received[] = [];
  const to = (prefix: string) => got.filter((r) => r.url.startsWith(prefix));
  /** The push whose log lines come from `routeId`. */
  const lokiPushOf = (routeId: string) =>
    to('/loki/api/v1/push').find((r) =>
      (JSON.parse(r.body) as { streams: { values: [string, string][] }[] }).streams.some((st) => st.values.some(([, line]) => JSON.parse(line).route_id === routeId)),
    );
  const dropped = async (name: string) => value(await scrape(metricsUrl), 'apisix_batch_process_dropped_entries_total', { name });

  beforeAll(async () => {
    up = await startEcho('sink-up');
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const url = req.url ?? '/';
        got.push({ method: req.method ?? '', url, headers: req.headers, body });
        const json = (status: number, v: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(v));
        };
        if (url.startsWith('/fail')) return json(500, { text: 'receiver down', code: 8 });
        if (req.method === 'GET' && url.startsWith('/es')) return json(200, { version: { number: url.startsWith('/es6') ? '6.8.23' : '8.15.0' } });
        if (url.endsWith('/_bulk')) return json(200, { errors: false, items: [] });
        if (url.startsWith('/services/collector')) return json(200, { text: 'Success', code: 0 });
        if (url.startsWith('/loki/')) {
          res.writeHead(204);
          return res.end();
        }
        json(404, {});
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    // HTTPS with a certificate from a CA nobody trusts: only ssl_verify false gets through.
    ca = await makeTestCa();
    tlsReceiver = https.createServer({ key: ca.key, cert: ca.cert }, (req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        got.push({ method: req.method ?? '', url: `/tls${req.url ?? '/'}`, headers: req.headers, body });
        res.writeHead(req.url?.startsWith('/loki/') ? 204 : 200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ text: 'Success', code: 0 }));
      });
    });
    await new Promise<void>((r) => tlsReceiver.listen(0, '127.0.0.1', r));
    const tlsBase = `https://127.0.0.1:${(tlsReceiver.address() as AddressInfo).port}`;
    gw = await startTestGateway();
    metricsUrl = `http://127.0.0.1:${(gw.config.plugin_attr.prometheus!.export_addr as { port: number }).port}/apisix/prometheus/metrics`;
    const upstream = { nodes: { [up.addr]: 1 } };
    const fast = { batch_max_size: 2, inactive_timeout: 1 };
    const failing = { batch_max_size: 1, max_retry_count: 1, retry_delay: 0 };
    await gw.put('/routes/es', {
      uri: '/es/*',
      upstream,
      plugins: {
        'elasticsearch-logger': {
          endpoint_addrs: [`${base}/es8a`, `${base}/es8b`],
          field: { index: 'svc-$host-{%Y.%m.%d}' },
          auth: { username: 'elastic', password: 's3cret' },
          headers: { 'X-Extra': 'on' },
          ...fast,
        },
      },
    });
    await gw.put('/routes/es6', {
      uri: '/es6/*',
      upstream,
      plugins: { 'elasticsearch-logger': { endpoint_addr: `${base}/es6`, field: { index: 'old' }, log_format: { host: '$host', uri: '$uri' }, batch_max_size: 1 } },
    });
    await gw.put('/routes/splunk', {
      uri: '/splunk/*',
      upstream,
      plugins: { 'splunk-hec-logging': { endpoint: { uri: `${base}/services/collector`, token: 'hec-token-1', channel: 'chan-7' }, ...fast } },
    });
    await gw.put('/routes/splunk-fmt', {
      uri: '/splunkfmt/*',
      upstream,
      plugins: { 'splunk-hec-logging': { endpoint: { uri: `${base}/services/collector/fmt`, token: 't' }, log_format: { path: '$uri', status: '$status' }, batch_max_size: 1 } },
    });
    await gw.put('/routes/loki', {
      uri: '/loki/*',
      upstream,
      plugins: {
        'loki-logger': {
          endpoint_addrs: [base],
          tenant_id: 'team-a',
          headers: { 'X-Extra': 'on' },
          log_labels: { job: 'gw', method: '$request_method', route: '${route_id}', missing: '$no_such_var' },
          // The three requests fill one batch; a long inactive_timeout keeps a slow request from splitting it.
          batch_max_size: 3,
          inactive_timeout: 30,
        },
      },
    });
    await gw.put('/routes/loki-default', { uri: '/lokidef', upstream, plugins: { 'loki-logger': { endpoint_addrs: [base], batch_max_size: 1 } } });
    await gw.put('/routes/es-fail', {
      uri: '/esfail',
      upstream,
      plugins: { 'elasticsearch-logger': { endpoint_addr: `${base}/fail-es`, field: { index: 'x' }, name: 'es-fail', ...failing } },
    });
    await gw.put('/routes/splunk-fail', {
      uri: '/splunkfail',
      upstream,
      plugins: { 'splunk-hec-logging': { endpoint: { uri: `${base}/fail-splunk`, token: 't' }, name: 'splunk-fail', ...failing } },
    });
    await gw.put('/routes/loki-fail', {
      uri: '/lokifail',
      upstream,
      plugins: { 'loki-logger': { endpoint_addrs: [base], endpoint_uri: '/fail-loki', name: 'loki-fail', ...failing } },
    });
    await gw.put('/routes/tls-loki', { uri: '/tlsloki', upstream, plugins: { 'loki-logger': { endpoint_addrs: [tlsBase], batch_max_size: 1 } } });
    await gw.put('/routes/tls-splunk-verify', {
      uri: '/tlssplunk/verify',
      upstream,
      plugins: { 'splunk-hec-logging': { endpoint: { uri: `${tlsBase}/services/collector/verify`, token: 't' }, name: 'tls-verify', batch_max_size: 1 } },
    });
    await gw.put('/routes/tls-splunk-trust', {
      uri: '/tlssplunk/trust',
      upstream,
      plugins: { 'splunk-hec-logging': { endpoint: { uri: `${tlsBase}/services/collector/trust`, token: 't' }, ssl_verify: false, batch_max_size: 1 } },
    });
  }, 30_000);

  afterAll(async () => {
    await gw?.close();
    receiver?.close();
    tlsReceiver?.close();
    await ca?.cleanup();
    await up?.close();
  });

  it('validates like APISIX', () => {
    const es = { endpoint_addrs: ['http://127.0.0.1:9200'], field: { index: 'i' } };
    expect(confError(esDef, es)).toBeNull();
    expect(confError(esDef, { endpoint_addr: 'http://127.0.0.1:9200', field: { index: 'i' } })).toBeNull();
    expect(confError(esDef, { endpoint_addrs: ['http://127.0.0.1:9200'] })).not.toBeNull();
    expect(confError(esDef, { ...es, endpoint_addrs: ['http://127.0.0.1:9200/'] })).not.toBeNull();
    expect(confError(esDef, { ...es, endpoint_addr: 'http://127.0.0.1:9200' })).not.toBeNull();
    expect(confError(esDef, { ...es, auth: { username: 'u' } })).not.toBeNull();
    expect(confError(esDef, { ...es, headers: { 'a:b': 'v' } })).not.toBeNull();
    expect(confError(esDef, { ...es, headers: {} })).not.toBeNull();
    expect(confError(splunkDef, { endpoint: { uri: 'http://127.0.0.1:8088/services/collector', token: 't' } })).toBeNull();
    expect(confError(splunkDef, { endpoint: { uri: 'http://127.0.0.1:8088/services/collector' } })).not.toBeNull();
    expect(confError(splunkDef, { endpoint: { uri: 'http://x', token: 't', keepalive_timeout: 999 } })).not.toBeNull();
    expect(confError(lokiDef, { endpoint_addrs: ['http://127.0.0.1:3100'] })).toBeNull();
    expect(confError(lokiDef, {})).not.toBeNull();
    expect(confError(lokiDef, { endpoint_addrs: ['http://127.0.0.1:3100'], timeout: 60001 })).not.toBeNull();
    expect(confError(lokiDef, { endpoint_addrs: ['http://127.0.0.1:3100'], log_labels: { a: '' } })).not.toBeNull();
    expect(confError(lokiDef, { endpoint_addrs: ['http://127.0.0.1:3100'], include_req_body_expr: [['arg_a', 'no-such-op', 1]] })).toMatch(/include_req_body_expr/);
    expect([lokiDef.priority, esDef.priority, splunkDef.priority]).toEqual([414, 413, 409]);
  });

  it('elasticsearch-logger index templates: strftime parts in local time, variables per request', () => {
    const d = new Date(2024, 0, 5, 7, 8, 9);
    expect(strftime('%Y.%m.%d %H:%M:%S %j %a %b %e %p %%', d)).toBe('2024.01.05 07:08:09 005 Fri Jan  5 AM %');
    const vars = new MapVars({ host: 'h1', route_id: 'r' });
    expect(new IndexTemplate('logs-{%Y-%m}-$host-${route_id}').render(vars, d.getTime())).toBe('logs-2024-01-h1-r');
    // `${...}` is a variable, never a time part; a literal index is used as written.
    expect(new IndexTemplate('plain').constant).toBe('plain');
  });

  it('elasticsearch-logger: version probe, then Bulk NDJSON round robin over endpoint_addrs with Basic auth', async () => {
    const day = () => strftime('%Y.%m.%d', new Date());
    const before = day();
    for (const i of [1, 2, 3]) expect((await fetch(`${gw.url}/es/${i}`)).status).toBe(200);
    const after = day();
    await waitFor(() => to('/es8').filter((r) => r.method === 'POST').length >= 2, 8000, 20);
    const probes = to('/es8').filter((r) => r.method === 'GET');
    expect(probes).toHaveLength(1);
    expect(probes[0]!.headers.authorization).toBe(basic('elastic', 's3cret'));
    expect(probes[0]!.headers['x-extra']).toBe('on');
    const bulks = to('/es8').filter((r) => r.method === 'POST');
    expect(bulks.map((r) => r.url).sort()).toEqual(['/es8a/_bulk', '/es8b/_bulk']);
    for (const b of bulks) {
      expect(b.headers['content-type']).toBe('application/x-ndjson');
      expect(b.headers.accept).toBe('application/vnd.elasticsearch+json');
      expect(b.headers.authorization).toBe(basic('elastic', 's3cret'));
      expect(b.headers['x-extra']).toBe('on');
    }
    const docs = bulks.flatMap((b) => parseBulk(b.body));
    expect(docs).toHaveLength(3);
    for (const [action] of docs) expect([`svc-127.0.0.1-${before}`, `svc-127.0.0.1-${after}`]).toContain(action.index._index);
    for (const [action] of docs) expect(Object.keys(action.index)).toEqual(['_index']);
    expect(docs.map(([, doc]) => doc.request.uri).sort()).toEqual(['/es/1', '/es/2', '/es/3']);
    expect(docs[0]![1].route_id).toBe('es');
    expect(docs[0]![1].response.status).toBe(200);
  });

  it('elasticsearch-logger: Elasticsearch 6 gets the _doc type on the action line; log_format entries', async () => {
    expect((await fetch(`${gw.url}/es6/x`)).status).toBe(200);
    await waitFor(() => to('/es6/_bulk').length >= 1, 8000, 20);
    expect(to('/es6').filter((r) => r.method === 'GET')).toHaveLength(1);
    expect(parseBulk(to('/es6/_bulk')[0]!.body)).toEqual([[{ index: { _index: 'old', _type: '_doc' } }, { host: '127.0.0.1', uri: '/es6/x', route_id: 'es6' }]]);
  });

  it('splunk-hec-logging: concatenated HEC events with the Splunk token and channel', async () => {
    const t0 = Date.now();
    expect((await fetch(`${gw.url}/splunk/a?x=1`)).status).toBe(200);
    expect((await fetch(`${gw.url}/splunk/b`, { method: 'POST', body: 'hello' })).status).toBe(200);
    const t1 = Date.now();
    await waitFor(() => to('/services/collector').filter((r) => !r.url.endsWith('/fmt')).length >= 1, 8000, 20);
    const [post] = to('/services/collector').filter((r) => !r.url.endsWith('/fmt'));
    expect(post!.method).toBe('POST');
    expect(post!.headers.authorization).toBe('Splunk hec-token-1');
    expect(post!.headers['x-splunk-request-channel']).toBe('chan-7');
    expect(post!.headers['content-type']).toBe('application/json');
    const events = splitConcatenated(post!.body);
    expect(events).toHaveLength(2);
    for (const e of events) {
      expect(Object.keys(e).sort()).toEqual(['event', 'host', 'source', 'sourcetype', 'time']);
      expect(e.source).toBe('apache-apisix-splunk-hec-logging');
      expect(e.sourcetype).toBe('_json');
      expect(e.host).toBe(os.hostname());
      expect(e.time).toBeGreaterThanOrEqual(t0 / 1000 - 0.001);
      expect(e.time).toBeLessThanOrEqual(t1 / 1000 + 5);
      expect(Object.keys(e.event).sort()).toEqual(
        ['latency', 'request_headers', 'request_method', 'request_query', 'request_size', 'request_url', 'response_headers', 'response_size', 'response_status', 'upstream'].sort(),
      );
      expect(e.event.response_status).toBe(200);
      expect(e.event.upstream).toBe(up.addr);
    }
    expect(events[0].event.request_url).toBe(`http://127.0.0.1:${gw.port}/splunk/a?x=1`);
    expect(events[0].event.request_query).toEqual({ x: '1' });
    expect(events[1].event.request_method).toBe('POST');
    expect(events[1].event.request_size).toBe(5);
  });

  it('splunk-hec-logging with log_format: the formatted entry is the event', async () => {
    expect((await fetch(`${gw.url}/splunkfmt/z`)).status).toBe(200);
    await waitFor(() => to('/services/collector/fmt').length >= 1, 8000, 20);
    const [e] = splitConcatenated(to('/services/collector/fmt')[0]!.body);
    expect(e.event).toEqual({ path: '/splunkfmt/z', status: 200, route_id: 'splunk-fmt' });
    expect(e.host).toBe(os.hostname());
  });

  it('loki-logger: streams per resolved label set, ns timestamps, tenant and headers', async () => {
    const t0 = Date.now();
    expect((await fetch(`${gw.url}/loki/1`)).status).toBe(200);
    expect((await fetch(`${gw.url}/loki/2`, { method: 'POST', body: 'b' })).status).toBe(200);
    expect((await fetch(`${gw.url}/loki/3`)).status).toBe(200);
    const t1 = Date.now();
    const push = (await waitFor(() => lokiPushOf('loki'), 8000, 20))!;
    expect(push.method).toBe('POST');
    expect(push.headers['x-scope-orgid']).toBe('team-a');
    expect(push.headers['x-extra']).toBe('on');
    expect(push.headers['content-type']).toBe('application/json');
    const { streams } = JSON.parse(push.body);
    expect(streams.map((s: any) => s.stream)).toEqual([
      { job: 'gw', method: 'GET', route: 'loki', missing: '$no_such_var' },
      { job: 'gw', method: 'POST', route: 'loki', missing: '$no_such_var' },
    ]);
    expect(streams.map((s: any) => s.values.map(([, line]: [string, string]) => JSON.parse(line).request.uri))).toEqual([['/loki/1', '/loki/3'], ['/loki/2']]);
    for (const s of streams) {
      for (const [ts] of s.values) {
        expect(ts).toMatch(/^\d+000000$/);
        const ms = Number(ts.slice(0, -6));
        expect(ms).toBeGreaterThanOrEqual(t0 - 1);
        expect(ms).toBeLessThanOrEqual(t1);
      }
    }
  });

  it('loki-logger defaults: /loki/api/v1/push, tenant "fake", label job=apisix', async () => {
    expect((await fetch(`${gw.url}/lokidef`)).status).toBe(200);
    const push = (await waitFor(() => lokiPushOf('loki-default'), 8000, 20))!;
    expect(push.headers['x-scope-orgid']).toBe('fake');
    expect(JSON.parse(push.body).streams).toHaveLength(1);
    expect(JSON.parse(push.body).streams[0].stream).toEqual({ job: 'apisix' });
  });

  it('a receiver answering 500: each batch is retried max_retry_count times, then dropped and counted', async () => {
    const names = ['es-fail', 'splunk-fail', 'loki-fail'];
    const before = await Promise.all(names.map(dropped));
    for (const p of ['/esfail', '/splunkfail', '/lokifail']) expect((await fetch(`${gw.url}${p}`)).status).toBe(200);
    await waitFor(async () => (await Promise.all(names.map(dropped))).every((n, i) => n - before[i]! === 1), 8000, 50);
    const posts = (prefix: string) => to(prefix).filter((r) => r.method === 'POST').length;
    // One send and one retry each; nothing after the drop.
    expect([posts('/fail-es/_bulk'), posts('/fail-splunk'), posts('/fail-loki')]).toEqual([2, 2, 2]);
    // The failed version probe is retried with the retry, and the bulk goes out without a known version.
    expect(to('/fail-es').filter((r) => r.method === 'GET')).toHaveLength(2);
    expect(parseBulk(to('/fail-es/_bulk')[0]!.body)[0]![0]).toEqual({ index: { _index: 'x' } });
  });

  it('ssl_verify: an untrusted certificate fails the batch unless ssl_verify is false (loki-logger\'s default)', async () => {
    const before = await dropped('tls-verify');
    for (const p of ['/tlsloki', '/tlssplunk/verify', '/tlssplunk/trust']) expect((await fetch(`${gw.url}${p}`)).status).toBe(200);
    await waitFor(() => to('/tls/loki/api/v1/push').length === 1 && to('/tls/services/collector/trust').length === 1, 8000, 20);
    await waitFor(async () => (await dropped('tls-verify')) - before === 1, 8000, 50);
    expect(to('/tls/services/collector/verify')).toEqual([]);
  });
});
