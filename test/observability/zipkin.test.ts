// zipkin against a small receiver implementing the Zipkin v2 API (POST /api/v2/spans, a JSON array of v2
// spans, answered 202 as Zipkin does; fields checked against the v2 model: 16/32 hex trace ids, 16 hex span
// ids, microsecond timestamps). Checks B3 propagation to the upstream (multi-header and single `b3`), the
// span tree APISIX reports (apisix.request SERVER with apisix.proxy and apisix.response_span children), the
// parent from incoming B3 headers, forced and refused sampling, and the 400 for a malformed b3 header.
// Spans leave after the batch processor's inactive_timeout (APISIX's fixed 5 s), so all traffic goes first.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ZipkinSpan } from '../../src/plugin/builtin/zipkin.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';

const HEX16 = /^[0-9a-f]{16}$/;

describe('zipkin (Zipkin v2 API receiver)', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let receiver: http.Server;
  const posts: { contentType: string | undefined; spans: ZipkinSpan[] }[] = [];
  const results: Record<string, { status: number; headers: Record<string, string> | null }> = {};

  const get = async (p: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${gw.url}${p}`, { headers });
    const text = await res.text();
    return { status: res.status, headers: res.status === 200 ? (JSON.parse(text) as { headers: Record<string, string> }).headers : null };
  };
  const spans = () => posts.flatMap((p) => p.spans);
  const byTrace = (t: string) => spans().filter((s) => s.traceId === t);

  beforeAll(async () => {
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/api/v2/spans') {
          res.writeHead(404).end();
          return;
        }
        const parsed = JSON.parse(body) as unknown;
        if (!Array.isArray(parsed)) {
          res.writeHead(400).end('expected a list of spans');
          return;
        }
        posts.push({ contentType: req.headers['content-type'], spans: parsed as ZipkinSpan[] });
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    up = await startEcho('zipkin-up');
    gw = await startTestGateway();
    const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/api/v2/spans`;
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/z', { uri: '/z/*', upstream, plugins: { zipkin: { endpoint, sample_ratio: 1, service_name: 'edge' } } });
    await gw.put('/routes/rare', { uri: '/rare', upstream, plugins: { zipkin: { endpoint, sample_ratio: 0.00001, server_addr: '10.1.2.3' } } });
    await gw.put('/routes/v1', { uri: '/v1', upstream, plugins: { zipkin: { endpoint, sample_ratio: 1, span_version: 1 } } });

    // All traffic first: the spans leave together once the processor has been idle for 5 s.
    results.fresh = await get('/z/a?x=1');
    results.multi = await get('/z/b', {
      'x-b3-traceid': '463ac35c9f6413ad48485a3953bb6124',
      'x-b3-spanid': 'a2fb4a1d1a96d312',
      'x-b3-parentspanid': '0020000000000001',
      'x-b3-sampled': '1',
      'uberctx-team': 'a b',
    });
    results.single = await get('/z/c', { b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90' });
    results.refused = await get('/z/d', { 'x-b3-traceid': '1111111111111111', 'x-b3-spanid': '2222222222222222', 'x-b3-sampled': '0' });
    results.forced = await get('/rare', { 'x-b3-flags': '1', 'x-b3-traceid': '3333333333333333', 'x-b3-spanid': '4444444444444444' });
    results.debug = await get('/rare', { b3: '5555555555555555-6666666666666666-d' });
    results.unsampled = await get('/rare', { b3: '0' });
    results.bad = await get('/z/e', { b3: '80f198ee56343ba864fe8b2a57d3eff7' });
    results.v1 = await get('/v1', { 'x-b3-traceid': '7777777777777777', 'x-b3-spanid': '8888888888888888' });
    await waitFor(() => spans().length >= 20, 12_000, 50);
  }, 25_000);

  afterAll(async () => {
    await gw?.close();
    await up?.close();
    receiver?.close();
  });

  it('a new trace: apisix.request (SERVER) with apisix.proxy and apisix.response_span; B3 of the proxy span upstream', () => {
    const h = results.fresh!.headers!;
    expect(h['x-b3-traceid']).toMatch(/^[0-9a-f]{32}$/);
    expect(h['x-b3-sampled']).toBe('1');
    const tree = byTrace(h['x-b3-traceid']!);
    expect(tree.map((s) => s.name).sort()).toEqual(['apisix.proxy', 'apisix.request', 'apisix.response_span']);
    const req = tree.find((s) => s.name === 'apisix.request')!;
    const proxy = tree.find((s) => s.name === 'apisix.proxy')!;
    const resp = tree.find((s) => s.name === 'apisix.response_span')!;
    expect(req.parentId).toBeUndefined();
    expect(req.kind).toBe('SERVER');
    expect(req.id).toMatch(HEX16);
    expect(proxy.parentId).toBe(req.id);
    expect(resp.parentId).toBe(req.id);
    expect(h['x-b3-spanid']).toBe(proxy.id);
    expect(h['x-b3-parentspanid']).toBe(req.id);
    expect(req.tags).toEqual({ component: 'apisix', 'http.method': 'GET', 'http.url': '/z/a?x=1', 'http.status_code': '200', 'apisix.response_source': 'upstream' });
    expect(req.localEndpoint).toMatchObject({ serviceName: 'edge', ipv4: '127.0.0.1', port: gw.port });
    expect(req.remoteEndpoint).toMatchObject({ ipv4: '127.0.0.1', port: expect.any(Number) });
    expect(proxy.remoteEndpoint).toBeNull();
    expect(proxy.tags).toEqual({});
    // Microseconds since the epoch; the children sit inside the request span.
    expect(Math.abs(req.timestamp / 1000 - Date.now())).toBeLessThan(60_000);
    expect(Number.isInteger(req.duration)).toBe(true);
    expect(resp.timestamp).toBeGreaterThanOrEqual(proxy.timestamp);
    expect(resp.timestamp + resp.duration).toBeLessThanOrEqual(req.timestamp + req.duration + 1);
    expect(posts.every((p) => p.contentType === 'application/json')).toBe(true);
  });

  it('continues incoming B3 headers and single-header b3 (which is not forwarded)', () => {
    const m = results.multi!.headers!;
    expect(m['x-b3-traceid']).toBe('463ac35c9f6413ad48485a3953bb6124');
    expect(m['uberctx-team']).toBe('a%20b');
    const req = byTrace('463ac35c9f6413ad48485a3953bb6124').find((s) => s.name === 'apisix.request')!;
    expect(req.parentId).toBe('a2fb4a1d1a96d312');
    expect(m['x-b3-parentspanid']).toBe(req.id);

    const s = results.single!.headers!;
    expect(s.b3).toBeUndefined();
    expect(s['x-b3-traceid']).toBe('80f198ee56343ba864fe8b2a57d3eff7');
    expect(byTrace('80f198ee56343ba864fe8b2a57d3eff7').find((x) => x.name === 'apisix.request')!.parentId).toBe('e457b5a2e4d86bd1');
  });

  it('sampled 0 and b3 "0" are not reported; x-b3-flags 1 and b3 debug force sampling', () => {
    expect(results.refused!.headers!['x-b3-sampled']).toBe('0');
    expect(byTrace('1111111111111111')).toHaveLength(0);
    // Not sampled: the upstream sees the request span itself.
    expect(results.refused!.headers!['x-b3-parentspanid']).toBe('2222222222222222');
    expect(results.unsampled!.headers!['x-b3-sampled']).toBe('0');

    expect(results.forced!.headers!['x-b3-sampled']).toBe('1');
    const forced = byTrace('3333333333333333');
    expect(forced).toHaveLength(3);
    expect(forced[0]!.localEndpoint.ipv4).toBe('10.1.2.3');
    expect(results.debug!.headers!['x-b3-flags']).toBe('1');
    expect(byTrace('5555555555555555')).toHaveLength(3);
  });

  it('span_version 1 reports rewrite, access, proxy and body_filter spans', () => {
    const names = byTrace('7777777777777777').map((s) => s.name).sort();
    expect(names).toEqual(['apisix.access', 'apisix.body_filter', 'apisix.proxy', 'apisix.request', 'apisix.rewrite']);
    const t = byTrace('7777777777777777');
    const proxy = t.find((s) => s.name === 'apisix.proxy')!;
    expect(t.find((s) => s.name === 'apisix.body_filter')!.parentId).toBe(proxy.id);
    expect(results.v1!.headers!['x-b3-spanid']).toBe(proxy.id);
  });

  it('a b3 header without a span id answers 400', () => {
    expect(results.bad!.status).toBe(400);
  });
});
