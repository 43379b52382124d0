// opentelemetry against an OTLP/HTTP receiver written here: it accepts POST /v1/traces and decodes each body
// with protobufjs and the official OpenTelemetry .proto definitions (test/observability/otlp/, copied from
// open-telemetry/opentelemetry-proto). Checks one span per sampled request, the parent from an incoming W3C
// traceparent, the traceparent the upstream receives, samplers, resource and span attributes as APISIX sets them.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';

interface KV {
  key: string;
  value: { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
}
interface Span {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: KV[];
  status?: { code?: number; message?: string };
  flags?: number;
}
interface Export {
  headers: http.IncomingHttpHeaders;
  resource: Record<string, unknown>;
  scope: string;
  spans: Span[];
}

const attrs = (kvs: KV[]) => {
  const out: Record<string, unknown> = {};
  for (const kv of kvs) out[kv.key] = kv.value.stringValue ?? (kv.value.intValue !== undefined ? Number(kv.value.intValue) : undefined) ?? kv.value.doubleValue ?? kv.value.boolValue;
  return out;
};

describe('opentelemetry (OTLP/HTTP protobuf receiver decoding with the official .proto files)', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let receiver: http.Server;
  const exports: Export[] = [];
  let ExportReq: protobuf.Type;

  const spans = () => exports.flatMap((e) => e.spans);
  const spanOf = (traceId: string) => spans().find((s) => s.traceId === traceId);
  const get = async (p: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${gw.url}${p}`, { headers });
    const text = await res.text();
    return { status: res.status, upstream: res.status === 200 ? (JSON.parse(text) as { headers: Record<string, string> }).headers : null };
  };

  beforeAll(async () => {
    const root = new protobuf.Root();
    const dir = path.join(import.meta.dirname, 'otlp');
    root.resolvePath = (_origin, target) => path.join(dir, target);
    await root.load('opentelemetry/proto/collector/trace/v1/trace_service.proto', { keepCase: false });
    ExportReq = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');

    receiver = http.createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/traces') {
          res.writeHead(404).end();
          return;
        }
        const msg = ExportReq.toObject(ExportReq.decode(Buffer.concat(parts)), { longs: String, bytes: String, enums: Number, defaults: false }) as any;
        for (const rs of msg.resourceSpans ?? []) {
          for (const ss of rs.scopeSpans ?? []) {
            const hex = (b64: string | undefined) => Buffer.from(b64 ?? '', 'base64').toString('hex');
            exports.push({
              headers: req.headers,
              resource: attrs(rs.resource?.attributes ?? []),
              scope: ss.scope?.name ?? '',
              spans: (ss.spans ?? []).map((s: any) => ({ ...s, traceId: hex(s.traceId), spanId: hex(s.spanId), parentSpanId: hex(s.parentSpanId), attributes: s.attributes ?? [] })),
            });
          }
        }
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    up = await startEcho('otel-up');
    gw = await startTestGateway({ config: { plugins: ['opentelemetry', 'proxy-rewrite'] } });
    await gw.put('/plugin_metadata/opentelemetry', {
      batch_span_processor: { max_export_batch_size: 1, inactive_timeout: 0.2 },
      collector: { address: `127.0.0.1:${(receiver.address() as AddressInfo).port}`, request_timeout: 3, request_headers: { foo: 'bar' } },
      trace_id_source: 'x-request-id',
      resource: { 'deployment.environment': 'test', replicas: 2, canary: false },
    });
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/services/svc1', { name: 'svc-name', upstream });
    await gw.put('/routes/on', {
      name: 'route-on',
      uri: '/on/*',
      service_id: 'svc1',
      plugins: {
        opentelemetry: { sampler: { name: 'always_on' }, additional_attributes: ['route_id', 'arg_q'], additional_header_prefix_attributes: ['x-tag-*', 'x-one'] },
      },
    });
    await gw.put('/routes/off', { uri: '/off', upstream, plugins: { opentelemetry: {} } });
    await gw.put('/routes/parent', {
      uri: '/parent',
      upstream,
      plugins: { opentelemetry: { sampler: { name: 'parent_base', options: { root: { name: 'always_off' } } } } },
    });
    await gw.put('/routes/ratio', { uri: '/ratio', upstream, plugins: { opentelemetry: { sampler: { name: 'trace_id_ratio', options: { fraction: 0.5 } } } } });
    await gw.put('/routes/fail', {
      uri: '/fail',
      upstream,
      plugins: { opentelemetry: { sampler: { name: 'always_on' } }, 'proxy-rewrite': { uri: '/status/503' } },
    });
  }, 20_000);

  afterAll(async () => {
    await gw?.close();
    await up?.close();
    receiver?.close();
  });

  it('continues an incoming traceparent: same trace, parent = incoming span, upstream gets the span of the gateway', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const r = await get('/on/a?q=7', { traceparent: `00-${traceId}-b7ad6b7169203331-01`, tracestate: 'vendor=1', 'x-tag-a': 'A', 'x-tag-b': 'B', 'x-one': '1', 'user-agent': 'ua/1' });
    expect(r.status).toBe(200);
    const tp = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(r.upstream!.traceparent!);
    expect(tp?.[1]).toBe(traceId);
    expect(tp![2]).not.toBe('b7ad6b7169203331');
    expect(r.upstream!.tracestate).toBe('vendor=1');
    await waitFor(() => spanOf(traceId) !== undefined, 5000, 20);
    const s = spanOf(traceId)!;
    expect(s.parentSpanId).toBe('b7ad6b7169203331');
    expect(s.spanId).toBe(tp![2]);
    expect(s.name).toBe('GET /on/*');
    expect(s.kind).toBe(2); // SPAN_KIND_SERVER
    expect(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano)).toBe(true);
    const a = attrs(s.attributes);
    expect(a).toMatchObject({
      'net.host.name': '127.0.0.1',
      'http.method': 'GET',
      'http.request.method': 'GET',
      'http.scheme': 'http',
      'url.scheme': 'http',
      'http.target': '/on/a?q=7',
      'url.path': '/on/a',
      'http.user_agent': 'ua/1',
      'user_agent.original': 'ua/1',
      'apisix.route_id': 'on',
      'apisix.route_name': 'route-on',
      'http.route': '/on/*',
      'apisix.service_id': 'svc1',
      'apisix.service_name': 'svc-name',
      'apisix.response_source': 'upstream',
      'http.status_code': 200,
      'http.response.status_code': 200,
      route_id: 'on',
      arg_q: '7',
      'x-tag-a': 'A',
      'x-tag-b': 'B',
      'x-one': '1',
    });
    expect(s.status?.code ?? 0).toBe(0);
    const e = exports.find((x) => x.spans.includes(s))!;
    expect(e.headers['content-type']).toBe('application/x-protobuf');
    expect(e.headers.foo).toBe('bar');
    expect(e.scope).toBe('opentelemetry-lua');
    expect(e.resource).toMatchObject({ hostname: expect.any(String), 'service.name': 'APISIX', 'deployment.environment': 'test', replicas: 2, canary: false });
  });

  it('starts a new trace without traceparent; x-request-id (32 hex) becomes the trace id', async () => {
    const r1 = await get('/on/b');
    const fresh = /^00-([0-9a-f]{32})-[0-9a-f]{16}-01$/.exec(r1.upstream!.traceparent!)![1]!;
    const rid = 'ABCDEF0123456789abcdef0123456789';
    const r2 = await get('/on/c', { 'x-request-id': rid });
    expect(r2.upstream!.traceparent!.split('-')[1]).toBe(rid.toLowerCase());
    // Not 32 hex: a random id instead.
    const r3 = await get('/on/d', { 'x-request-id': 'not-a-trace-id' });
    expect(r3.upstream!.traceparent!.split('-')[1]).toMatch(/^[0-9a-f]{32}$/);
    await waitFor(() => spanOf(fresh) !== undefined && spanOf(rid.toLowerCase()) !== undefined, 5000, 20);
    expect(spanOf(fresh)!.parentSpanId).toBe('');
  });

  it('always_off (the default) and parent_base: the upstream still gets a traceparent, unsampled spans are not exported', async () => {
    const off = await get('/off', { traceparent: '00-11111111111111111111111111111111-2222222222222222-01' });
    expect(off.upstream!.traceparent).toMatch(/^00-11111111111111111111111111111111-[0-9a-f]{16}-00$/);
    const notSampled = await get('/parent', { traceparent: '00-33333333333333333333333333333333-4444444444444444-00' });
    expect(notSampled.upstream!.traceparent).toMatch(/^00-33333333333333333333333333333333-[0-9a-f]{16}-00$/);
    const rootOff = await get('/parent');
    const rootTrace = rootOff.upstream!.traceparent!.split('-')[1]!;
    expect(rootOff.upstream!.traceparent).toMatch(/-00$/);
    const sampled = await get('/parent', { traceparent: '00-55555555555555555555555555555555-6666666666666666-01' });
    expect(sampled.upstream!.traceparent).toMatch(/^00-55555555555555555555555555555555-[0-9a-f]{16}-01$/);
    // Spans are exported in order: once the sampled one arrived, the others would have too.
    await waitFor(() => spanOf('55555555555555555555555555555555') !== undefined, 5000, 20);
    expect(spanOf('55555555555555555555555555555555')!.parentSpanId).toBe('6666666666666666');
    for (const t of ['11111111111111111111111111111111', '33333333333333333333333333333333', rootTrace]) expect(spanOf(t)).toBeUndefined();
  });

  it('trace_id_ratio samples on the first 4 bytes of the trace id', async () => {
    const low = '00000001aaaaaaaaaaaaaaaaaaaaaaaa';
    const high = 'fffffff0aaaaaaaaaaaaaaaaaaaaaaaa';
    expect((await get('/ratio', { 'x-request-id': high })).upstream!.traceparent).toMatch(new RegExp(`^00-${high}-[0-9a-f]{16}-00$`));
    expect((await get('/ratio', { 'x-request-id': low })).upstream!.traceparent).toMatch(new RegExp(`^00-${low}-[0-9a-f]{16}-01$`));
    await waitFor(() => spanOf(low) !== undefined, 5000, 20);
    expect(spanOf(high)).toBeUndefined();
    expect(spanOf(low)!.name).toBe('GET /ratio');
  });

  it('an upstream 5xx sets the span status to ERROR with the response source', async () => {
    const rid = 'cccccccccccccccccccccccccccccccc';
    const r = await get('/fail', { 'x-request-id': rid });
    expect(r.status).toBe(503);
    await waitFor(() => spanOf(rid) !== undefined, 5000, 20);
    const s = spanOf(rid)!;
    expect(s.status).toMatchObject({ code: 2, message: 'upstream error: 503' });
    expect(attrs(s.attributes)['http.status_code']).toBe(503);
  });
});
