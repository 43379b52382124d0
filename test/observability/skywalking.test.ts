// skywalking and skywalking-logger against a fake OAP written here: it serves SkyWalking's HTTP JSON endpoints
// (POST /v3/segments, /v3/logs, /v3/management/reportProperties, /v3/management/keepAlive) and parses every body with protobufjs's ProtoJSON
// parser (protobufjs/ext/protojson, strict like the OAP's JsonFormat: unknown fields, wrong types and unknown
// enum names are refused) against the official .proto files (test/observability/skywalking/, copied from
// apache/skywalking-data-collect-protocol). The sw8 headers the upstream receives are decoded here from the
// protocol's text (8 dash-separated fields, base64), not with the plugin's code.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import protobuf from 'protobufjs';
import protojson from 'protobufjs/ext/protojson.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/observability/logger.ts';
import { MAX_QUEUED, SkyWalkingReporter, type SwSegment } from '../../src/plugin/builtin/skywalking-reporter.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';

interface Tag {
  key: string;
  value: string;
}
interface Ref {
  refType: string;
  traceId: string;
  parentTraceSegmentId: string;
  parentSpanId: number;
  parentService: string;
  parentServiceInstance: string;
  parentEndpoint: string;
  networkAddressUsedAtPeer: string;
}
interface Span {
  spanId: number;
  parentSpanId: number;
  startTime: number;
  endTime: number;
  refs: Ref[];
  operationName: string;
  peer: string;
  spanType: string;
  spanLayer: string;
  componentId: number;
  isError: boolean;
  tags: Tag[];
}
interface Segment {
  traceId: string;
  traceSegmentId: string;
  service: string;
  serviceInstance: string;
  spans: Span[];
}

/** A fake OAP: every accepted body, decoded with the official messages; `hang` keeps requests unanswered. */
export interface FakeOap {
  readonly url: string;
  readonly segments: Segment[];
  /** Segments per accepted /v3/segments POST. */
  readonly segmentPosts: number[];
  readonly properties: Record<string, unknown>[];
  readonly pings: Record<string, unknown>[];
  readonly logs: Record<string, unknown>[];
  /** Bodies the ProtoJSON parser refused (should stay empty). */
  readonly rejected: string[];
  readonly contentTypes: Set<string>;
  /** Requests received while hanging. */
  held: number;
  hang: boolean;
  close(): Promise<void>;
}

export async function startFakeOap(): Promise<FakeOap> {
  const root = new protobuf.Root();
  const dir = path.join(import.meta.dirname, 'skywalking');
  root.resolvePath = (_origin, target) => path.join(dir, target);
  await root.load(['language-agent/Tracing.proto', 'logging/Logging.proto', 'management/Management.proto'], { keepCase: true });
  const types: Record<string, protobuf.Type> = {
    '/v3/segments': root.lookupType('skywalking.v3.SegmentObject'),
    '/v3/logs': root.lookupType('skywalking.v3.LogData'),
    '/v3/management/reportProperties': root.lookupType('skywalking.v3.InstanceProperties'),
    '/v3/management/keepAlive': root.lookupType('skywalking.v3.InstancePingPkg'),
  };
  const oap: FakeOap = {
    url: '',
    segments: [],
    segmentPosts: [],
    properties: [],
    pings: [],
    logs: [],
    rejected: [],
    contentTypes: new Set(),
    held: 0,
    hang: false,
    close: async () => {},
  };
  const decode = (type: protobuf.Type, json: unknown) =>
    type.toObject(protojson.fromJson(type, json), { enums: String, longs: Number, defaults: true, arrays: true });
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (oap.hang) {
        oap.held++;
        return;
      }
      const type = req.method === 'POST' ? types[req.url ?? ''] : undefined;
      if (type === undefined) {
        res.writeHead(404).end();
        return;
      }
      oap.contentTypes.add(req.headers['content-type'] ?? '');
      try {
        const json = JSON.parse(body) as unknown;
        if (req.url === '/v3/segments') {
          if (!Array.isArray(json)) throw new Error('expected a JSON array of segments');
          for (const s of json) oap.segments.push(decode(type, s) as Segment);
          oap.segmentPosts.push(json.length);
        } else if (req.url === '/v3/logs') {
          if (!Array.isArray(json)) throw new Error('expected a JSON array of logs');
          for (const l of json) oap.logs.push(decode(type, l));
        } else if (req.url === '/v3/management/reportProperties') oap.properties.push(decode(type, json));
        else oap.pings.push(decode(type, json));
      } catch (err) {
        oap.rejected.push(`${req.url}: ${(err as Error).message}: ${body.slice(0, 300)}`);
        res.writeHead(400).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(oap, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString();

/** sw8 as the SkyWalking cross-process propagation protocol v3 documents it. */
function decodeSw8(v: string | undefined) {
  expect(v).toBeDefined();
  const f = v!.split('-');
  expect(f).toHaveLength(8);
  return {
    sample: f[0],
    traceId: unb64(f[1]!),
    segmentId: unb64(f[2]!),
    spanId: Number(f[3]),
    service: unb64(f[4]!),
    instance: unb64(f[5]!),
    endpoint: unb64(f[6]!),
    address: unb64(f[7]!),
  };
}

const tagsOf = (s: Span) => Object.fromEntries(s.tags.map((t) => [t.key, t.value]));

describe('skywalking (fake OAP parsing ProtoJSON with the official .proto files)', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let oap: FakeOap;
  let deadPort: number;

  const get = async (p: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${gw.url}${p}`, { headers });
    const text = await res.text();
    const upstream = res.headers.get('content-type') === 'application/json' && text.startsWith('{"server"') ? (JSON.parse(text) as { headers: Record<string, string> }).headers : null;
    return { status: res.status, upstream };
  };
  const segmentsOf = (op: string) => oap.segments.filter((s) => s.spans.some((sp) => sp.operationName === op));
  const only = (op: string) => {
    const s = segmentsOf(op);
    expect(s).toHaveLength(1);
    const seg = s[0]!;
    const entry = seg.spans.find((x) => x.spanType === 'Entry')!;
    const exit = seg.spans.find((x) => x.spanType === 'Exit')!;
    expect(seg.spans).toHaveLength(2);
    return { seg, entry, exit };
  };

  beforeAll(async () => {
    oap = await startFakeOap();
    up = await startEcho('sw-up');
    deadPort = await freePort();
    gw = await startTestGateway({
      config: {
        plugins: ['skywalking', 'proxy-rewrite'],
        plugin_attr: { skywalking: { endpoint_addr: `${oap.url}/`, service_name: 'edge', service_instance_name: '$hostname', report_interval: 1 } },
      },
    });
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/sw', { uri: '/sw/*', upstream, plugins: { skywalking: {} } });
    await gw.put('/routes/status', { uri: '/status/*', upstream, plugins: { skywalking: { sample_ratio: 1 } } });
    await gw.put('/routes/half', { uri: '/half', upstream, plugins: { skywalking: { sample_ratio: 0.5 } } });
    await gw.put('/routes/rare', { uri: '/rare', upstream, plugins: { skywalking: { sample_ratio: 0.00001 } } });
    await gw.put('/routes/dead', { uri: '/dead', upstream: { nodes: { [`127.0.0.1:${deadPort}`]: 1 }, retries: 0 }, plugins: { skywalking: {} } });
    await gw.put('/routes/local', { uri: '/local', plugins: { skywalking: {} } });
  }, 30_000);

  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await oap?.close();
  });

  it('one segment per request: an Entry span and an Exit span to the node; the upstream gets sw8 naming them', async () => {
    const r = await get('/sw/a?x=1');
    expect(r.status).toBe(200);
    await waitFor(() => segmentsOf('/sw/a').length === 1, 10_000);
    const { seg, entry, exit } = only('/sw/a');
    expect(oap.rejected).toEqual([]);
    expect(seg.service).toBe('edge');
    expect(seg.serviceInstance).toBe(os.hostname());
    // A new trace: the trace id is the segment id.
    expect(seg.traceSegmentId).toMatch(/^[0-9a-f-]{36}$/);
    expect(seg.traceId).toBe(seg.traceSegmentId);

    expect(entry).toMatchObject({ spanId: 0, parentSpanId: -1, operationName: '/sw/a', spanLayer: 'Http', componentId: 6002, isError: false, refs: [], peer: '' });
    expect(tagsOf(entry)).toEqual({ 'http.method': 'GET', 'http.params': 'http://127.0.0.1/sw/a?x=1', 'http.status_code': '200' });
    expect(exit).toMatchObject({ spanId: 1, parentSpanId: 0, operationName: '/sw/a', peer: up.addr, spanLayer: 'Http', componentId: 6002, isError: false });
    expect(tagsOf(exit)).toEqual({ 'http.status_code': '200' });
    // Milliseconds since the epoch; the exit span sits inside the entry span.
    expect(Math.abs(entry.startTime - Date.now())).toBeLessThan(60_000);
    expect(exit.startTime).toBeGreaterThanOrEqual(entry.startTime);
    expect(exit.endTime).toBeGreaterThanOrEqual(exit.startTime);
    expect(entry.endTime).toBeGreaterThanOrEqual(exit.endTime);

    const sw8 = decodeSw8(r.upstream!.sw8);
    expect(sw8).toEqual({
      sample: '1',
      traceId: seg.traceId,
      segmentId: seg.traceSegmentId,
      spanId: exit.spanId,
      service: 'edge',
      instance: os.hostname(),
      endpoint: '/sw/a',
      address: exit.peer,
    });
    expect(r.upstream!['sw8-correlation']).toBeUndefined();
    expect([...oap.contentTypes]).toEqual(['application/json']);
  });

  it('an incoming sw8 becomes the entry span ref and keeps the trace id; sw8-correlation is carried', async () => {
    const incoming = ['1', b64('trace-from-app'), b64('seg-of-app'), '3', b64('frontend'), b64('fe-1'), b64('/checkout'), b64('gw.example:80')].join('-');
    const corr = `${b64('tenant')}:${b64('blue')}`;
    const r = await get('/sw/child', { sw8: incoming, 'sw8-correlation': corr });
    expect(r.status).toBe(200);
    await waitFor(() => segmentsOf('/sw/child').length === 1, 10_000);
    const { seg, entry, exit } = only('/sw/child');
    expect(seg.traceId).toBe('trace-from-app');
    expect(seg.traceSegmentId).not.toBe('seg-of-app');
    expect(entry.refs).toEqual([
      {
        refType: 'CrossProcess',
        traceId: 'trace-from-app',
        parentTraceSegmentId: 'seg-of-app',
        parentSpanId: 3,
        parentService: 'frontend',
        parentServiceInstance: 'fe-1',
        parentEndpoint: '/checkout',
        networkAddressUsedAtPeer: 'gw.example:80',
      },
    ]);
    expect(exit.refs).toEqual([]);
    const sw8 = decodeSw8(r.upstream!.sw8);
    expect(sw8.traceId).toBe('trace-from-app');
    expect(sw8.segmentId).toBe(seg.traceSegmentId);
    expect(sw8.spanId).toBe(1);
    expect(r.upstream!['sw8-correlation']).toBe(corr);
  });

  it('a malformed sw8 starts a new trace and never fails the request', async () => {
    const bad: Record<string, string> = {
      '/sw/bad-count': ['1', b64('t'), b64('s'), '0', b64('svc')].join('-'),
      '/sw/bad-base64': ['1', '!!!', b64('s'), '0', b64('a'), b64('b'), b64('c'), b64('d')].join('-'),
      '/sw/bad-span': ['1', b64('t'), b64('s'), 'x', b64('a'), b64('b'), b64('c'), b64('d')].join('-'),
      '/sw/bad-empty': ['1', '', b64('s'), '0', b64('a'), b64('b'), b64('c'), b64('d')].join('-'),
    };
    for (const [p, sw8] of Object.entries(bad)) expect((await get(p, { sw8 })).status).toBe(200);
    await waitFor(() => Object.keys(bad).every((p) => segmentsOf(p).length === 1), 10_000);
    for (const p of Object.keys(bad)) {
      const { seg, entry } = only(p);
      expect(seg.traceId).toBe(seg.traceSegmentId);
      expect(entry.refs).toEqual([]);
    }
  });

  it('without sw8, a request-id header names the trace (tracer.lua)', async () => {
    await get('/sw/rid', { 'request-id': 'req-42' });
    await waitFor(() => segmentsOf('/sw/rid').length === 1, 10_000);
    expect(only('/sw/rid').seg.traceId).toBe('req-42');
  });

  it('5xx: the entry span and the exit span are errors; a dead node gives an error exit span with its address', async () => {
    expect((await get('/status/503')).status).toBe(503);
    expect((await get('/dead')).status).toBe(502);
    await waitFor(() => segmentsOf('/status/503').length === 1 && segmentsOf('/dead').length === 1, 10_000);
    const s = only('/status/503');
    expect(s.entry.isError).toBe(true);
    expect(s.exit.isError).toBe(true);
    expect(tagsOf(s.entry)['http.status_code']).toBe('503');
    expect(tagsOf(s.exit)['http.status_code']).toBe('503');
    const d = only('/dead');
    expect(d.entry.isError).toBe(true);
    expect(d.exit).toMatchObject({ isError: true, peer: `127.0.0.1:${deadPort}` });
    expect(tagsOf(d.entry)['http.status_code']).toBe('502');
  });

  it('a locally answered request still reports both spans (APISIX shape), exit without a status', async () => {
    expect((await get('/local')).status).toBe(503);
    await waitFor(() => segmentsOf('/local').length === 1, 10_000);
    const { exit } = only('/local');
    expect(exit.peer).toBe('upstream service');
    expect(exit.tags).toEqual([]);
  });

  it('sample_ratio: about half of 200 requests are traced; unsampled ones pass an incoming sw8 through untouched', async () => {
    const N = 200;
    let withSw8 = 0;
    for (let i = 0; i < N; i++) {
      const r = await get('/half');
      expect(r.status).toBe(200);
      if (r.upstream!.sw8 !== undefined) withSw8++;
    }
    // Binomial(200, 0.5): sd ~7; 60..140 is beyond 5 sd either way.
    expect(withSw8).toBeGreaterThan(60);
    expect(withSw8).toBeLessThan(140);
    await waitFor(() => segmentsOf('/half').length === withSw8, 10_000);

    const incoming = ['1', b64('t-rare'), b64('s-rare'), '0', b64('a'), b64('b'), b64('c'), b64('d')].join('-');
    const r = await get('/rare', { sw8: incoming });
    expect(r.upstream!.sw8).toBe(incoming);
  });

  it('reports instance properties once, then keeps alive', async () => {
    await waitFor(() => oap.pings.length >= 1, 10_000);
    expect(oap.properties).toHaveLength(1);
    expect(oap.properties[0]).toMatchObject({ service: 'edge', serviceInstance: os.hostname(), properties: [{ key: 'language', value: 'nodejs' }] });
    expect(oap.pings[0]).toMatchObject({ service: 'edge', serviceInstance: os.hostname() });
    expect(oap.rejected).toEqual([]);
  });
});

describe('skywalking with an OAP that never answers', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let oap: FakeOap;

  beforeAll(async () => {
    oap = await startFakeOap();
    oap.hang = true;
    up = await startEcho('sw-up2');
    gw = await startTestGateway({
      config: { plugins: ['skywalking'], plugin_attr: { skywalking: { endpoint_addr: oap.url, report_interval: 1 } } },
    });
    await gw.put('/routes/r', { uri: '/r', upstream: { nodes: { [up.addr]: 1 } }, plugins: { skywalking: {} } });
  }, 30_000);

  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await oap?.close();
  });

  it('requests keep flowing while the reporter waits on the OAP', async () => {
    expect((await fetch(`${gw.url}/r`)).status).toBe(200);
    // The first tick is now stuck on the OAP.
    await waitFor(() => oap.held >= 1, 10_000);
    for (let i = 0; i < 50; i++) {
      const res = await fetch(`${gw.url}/r`, { signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    expect(oap.segments).toHaveLength(0);
    expect(oap.held).toBeGreaterThanOrEqual(1);
  });
});

describe('skywalking-logger (LogData to the fake OAP)', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let oap: FakeOap;
  interface Log {
    traceContext: { traceId: string; traceSegmentId: string; spanId: number } | null;
    body: { json: { json: string } | null };
    service: string;
    serviceInstance: string;
    endpoint: string;
  }
  const logsOf = (endpoint: string) => (oap.logs as unknown as Log[]).filter((l) => l.endpoint === endpoint);

  beforeAll(async () => {
    oap = await startFakeOap();
    up = await startEcho('sw-log-up');
    gw = await startTestGateway({
      config: { plugins: ['skywalking', 'skywalking-logger'], plugin_attr: { skywalking: { endpoint_addr: oap.url, report_interval: 1 } } },
    });
    const upstream = { nodes: { [up.addr]: 1 } };
    const logger = { endpoint_addr: oap.url, service_instance_name: '$hostname', batch_max_size: 1, inactive_timeout: 1 };
    await gw.put('/routes/traced', { uri: '/traced', upstream, plugins: { skywalking: {}, 'skywalking-logger': logger } });
    await gw.put('/routes/logged', { uri: '/logged/*', upstream, plugins: { 'skywalking-logger': { ...logger, service_name: 'edge-logs', log_format: { m: '$request_method' } } } });
  }, 30_000);

  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await oap?.close();
  });

  it('links the log to the segment the skywalking plugin reported (trace, segment, exit span)', async () => {
    const r = await fetch(`${gw.url}/traced?q=1`);
    expect(r.status).toBe(200);
    await r.text();
    await waitFor(() => logsOf('/traced').length === 1 && oap.segments.length === 1, 10_000);
    expect(oap.rejected).toEqual([]);
    const log = logsOf('/traced')[0]!;
    const seg = oap.segments[0]!;
    expect(log.traceContext).toEqual({ traceId: seg.traceId, traceSegmentId: seg.traceSegmentId, spanId: 1 });
    expect(log.service).toBe('APISIX');
    expect(log.serviceInstance).toBe(os.hostname());
    const entry = JSON.parse(log.body.json!.json) as { request: { uri: string; method: string }; response: { status: number }; route_id: string };
    expect(entry.request).toMatchObject({ uri: '/traced?q=1', method: 'GET' });
    expect(entry.response.status).toBe(200);
    expect(entry.route_id).toBe('traced');
  });

  it('takes the trace context from an incoming sw8 alone, and leaves it out for a malformed one', async () => {
    const sw8 = ['1', b64('app-trace'), b64('app-seg'), '4', b64('a'), b64('b'), b64('c'), b64('d')].join('-');
    expect((await fetch(`${gw.url}/logged/good`, { headers: { sw8 } })).status).toBe(200);
    expect((await fetch(`${gw.url}/logged/bad`, { headers: { sw8: '1-abc' } })).status).toBe(200);
    await waitFor(() => logsOf('/logged/good').length === 1 && logsOf('/logged/bad').length === 1, 10_000);
    const good = logsOf('/logged/good')[0]!;
    expect(good.traceContext).toEqual({ traceId: 'app-trace', traceSegmentId: 'app-seg', spanId: 4 });
    expect(good.service).toBe('edge-logs');
    expect(JSON.parse(good.body.json!.json)).toEqual({ m: 'GET', route_id: 'logged' });
    expect(logsOf('/logged/bad')[0]!.traceContext).toBeNull();
  });
});

describe('skywalking reporter queue', () => {
  it('holds at most MAX_QUEUED segments and sends them in batches of at most 100', async () => {
    const oap = await startFakeOap();
    const reporter = new SkyWalkingReporter({ endpoint: oap.url, service: 's', instance: 'i', intervalMs: 1000, logger: silentLogger });
    try {
      const seg = (n: number): SwSegment => ({ traceId: `t${n}`, traceSegmentId: `s${n}`, service: 's', serviceInstance: 'i', spans: [] });
      for (let i = 0; i < MAX_QUEUED + 25; i++) reporter.push(seg(i));
      expect(reporter.queued).toBe(MAX_QUEUED);
      await waitFor(() => oap.segments.length === MAX_QUEUED, 20_000);
      expect(oap.rejected).toEqual([]);
      expect(Math.max(...oap.segmentPosts)).toBe(100);
      expect(oap.segmentPosts).toHaveLength(MAX_QUEUED / 100);
      // The oldest were kept, the overflow dropped.
      expect(oap.segments[0]!.traceId).toBe('t0');
      expect(oap.segments.some((x) => x.traceId === `t${MAX_QUEUED}`)).toBe(false);
      expect(reporter.queued).toBe(0);
    } finally {
      await reporter.close();
      await oap.close();
    }
  });
});
