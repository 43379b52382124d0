// Health checks of gRPC upstreams through a running gateway, against real @grpc/grpc-js servers that serve
// swytest.Echo beside a hand-written grpc.health.v1.Health (the official health.proto, loaded with
// proto-loader). Active: `checks.active.type: grpc` probes Health/Check for `grpc_service`; a node whose
// status flips to NOT_SERVING is marked unhealthy and loses its traffic, and gets both back once SERVING again;
// a server without the health service (UNIMPLEMENTED) is unhealthy; `grpcs` probes over TLS honour
// https_verify_certificate. Passive: an HTTP 200 whose grpc-status is
// UNAVAILABLE (in the trailers after a sent head, or trailers-only) counts as a 503 (Envoy's grpc -> HTTP
// mapping) and ejects the node; NOT_FOUND (404) does not unless listed; a node that sends its head and then
// broken the stream is ejected too. A req_headers line HTTP/2 forbids (Connection) is left out of the probe.
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { grpcToHttpStatus } from '../../src/pipeline/grpc.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { ECHO_PROTO, echoClient, makeTestCa, unary, type EchoClient, type TestCa } from '../helpers/grpc.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/proc.ts';

const HEALTH_PROTO = path.join(import.meta.dirname, 'fixtures/health.proto');
const loaded = grpc.loadPackageDefinition(protoLoader.loadSync([ECHO_PROTO, HEALTH_PROTO], { keepCase: true, defaults: true })) as any;
const EchoService = loaded.swytest.Echo.service as grpc.ServiceDefinition;
const HealthService = loaded.grpc.health.v1.Health.service as grpc.ServiceDefinition;

type Serving = 'SERVING' | 'NOT_SERVING';

interface Node {
  readonly name: string;
  readonly addr: string;
  readonly port: number;
  /** Health/Check answer per service name ('' = server); unknown services get NOT_FOUND. */
  readonly health: Map<string, Serving>;
  /** Service names the probes asked for. */
  readonly asked: string[];
  hits: number;
  stop(): Promise<void>;
}

/**
 * A gRPC server: Echo.Unary answers its name, or fails with `failCode` (after sending the response head when
 * `headFirst`, so the status travels in the trailers); with `withHealth`, grpc.health.v1.Health/Check.
 */
async function node(name: string, opts: { withHealth?: boolean; failCode?: number; headFirst?: boolean; tls?: TestCa } = {}): Promise<Node> {
  const server = new grpc.Server();
  const n = {
    name,
    health: new Map<string, Serving>([['', 'SERVING'], ['swytest.Echo', 'SERVING']]),
    asked: [] as string[],
    hits: 0,
  } as Node & { addr: string; port: number; stop(): Promise<void> };
  server.addService(EchoService, {
    Unary(call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) {
      n.hits++;
      if (opts.failCode === undefined) return cb(null, { text: name });
      if (opts.headFirst) call.sendMetadata(new grpc.Metadata());
      cb({ code: opts.failCode, details: `${name} fails` });
    },
  });
  if (opts.withHealth !== false) {
    server.addService(HealthService, {
      Check(call: grpc.ServerUnaryCall<{ service: string }, any>, cb: grpc.sendUnaryData<any>) {
        const svc = call.request.service;
        n.asked.push(svc);
        const s = n.health.get(svc);
        if (s === undefined) return cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        cb(null, { status: s });
      },
    });
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      '127.0.0.1:0',
      opts.tls === undefined
        ? grpc.ServerCredentials.createInsecure()
        : grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(opts.tls.key), cert_chain: Buffer.from(opts.tls.cert) }]),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
  n.port = port;
  n.addr = `127.0.0.1:${port}`;
  n.stop = () => new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  return n;
}

let gw: TestGateway;
let control: string;
let client: EchoClient;
const nodes: Node[] = [];

beforeAll(async () => {
  const port = await freePort();
  gw = await startTestGateway({ config: { apisix: { enable_control: true, control: { ip: '127.0.0.1', port } } } });
  control = `http://127.0.0.1:${port}`;
  client = echoClient(`127.0.0.1:${gw.port}`);
});

afterAll(async () => {
  client?.close();
  await gw?.close();
});

afterEach(async () => {
  for (const n of nodes.splice(0)) await n.stop();
});

async function start(name: string, opts?: Parameters<typeof node>[1]): Promise<Node> {
  const n = await node(name, opts);
  nodes.push(n);
  return n;
}

async function nodeStatus(key: string, port: number): Promise<string | undefined> {
  const res = await fetch(`${control}/v1/healthcheck/${key}`);
  if (res.status !== 200) return undefined;
  const body = (await res.json()) as { nodes: { port: number; status: string }[] | Record<string, never> };
  return Array.isArray(body.nodes) ? body.nodes.find((x) => x.port === port)?.status : undefined;
}

/** `n` calls through route `caseId`; the names of the nodes that answered, failures as `code:<n>`. */
async function calls(caseId: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      await unary(client, { text: 'x' }, { metadata: { 'x-case': caseId } }).then(
        (r) => r.reply.text,
        (e: grpc.ServiceError) => `code:${e.code}`,
      ),
    );
  }
  return out;
}

async function route(id: string, upstream: Record<string, unknown>): Promise<void> {
  await gw.put(`/upstreams/${id}`, { scheme: 'grpc', retries: 0, ...upstream });
  await gw.put(`/routes/${id}`, { uri: '/swytest.Echo/*', vars: [['http_x_case', '==', id]], upstream_id: id });
}

const active = (extra: Record<string, unknown> = {}) => ({
  type: 'grpc',
  timeout: 1,
  healthy: { interval: 1, successes: 1 },
  unhealthy: { interval: 1, http_failures: 1, tcp_failures: 1, timeouts: 2 },
  ...extra,
});

describe('active grpc.health.v1 probes', () => {
  it('a node flipping to NOT_SERVING loses its traffic and gets it back when SERVING again', async () => {
    const a = await start('a');
    const b = await start('b');
    await route('act', { nodes: { [a.addr]: 1, [b.addr]: 1 }, checks: { active: active({ grpc_service: 'swytest.Echo' }) } });
    await waitFor(() => a.asked.length > 0 && b.asked.length > 0, 5000, 20);
    // The probe asks for the configured service name.
    expect(new Set([...a.asked, ...b.asked])).toEqual(new Set(['swytest.Echo']));
    expect(new Set(await calls('act', 4))).toEqual(new Set(['a', 'b']));

    a.health.set('swytest.Echo', 'NOT_SERVING');
    await waitFor(async () => (await nodeStatus('upstreams/act', a.port)) === 'unhealthy', 8000, 50);
    const before = a.hits;
    expect(await calls('act', 6)).toEqual(['b', 'b', 'b', 'b', 'b', 'b']);
    expect(a.hits).toBe(before);

    a.health.set('swytest.Echo', 'SERVING');
    await waitFor(async () => (await nodeStatus('upstreams/act', a.port)) === 'healthy', 8000, 50);
    expect(new Set(await calls('act', 4))).toEqual(new Set(['a', 'b']));
  }, 30_000);

  it('a server without the health service, or not knowing the service, is unhealthy', async () => {
    const plain = await start('plain', { withHealth: false });
    const other = await start('other');
    const ok = await start('ok');
    await route('nohealth', {
      nodes: { [plain.addr]: 1, [other.addr]: 1, [ok.addr]: 1 },
      checks: { active: active({ grpc_service: 'swytest.Echo' }) },
    });
    other.health.delete('swytest.Echo');
    await waitFor(async () => (await nodeStatus('upstreams/nohealth', plain.port)) === 'unhealthy', 8000, 50);
    await waitFor(async () => (await nodeStatus('upstreams/nohealth', other.port)) === 'unhealthy', 8000, 50);
    expect(await nodeStatus('upstreams/nohealth', ok.port)).toBe('healthy');
    expect(await calls('nohealth', 4)).toEqual(['ok', 'ok', 'ok', 'ok']);
  }, 30_000);

  it('grpcs probes over TLS (h2 by ALPN): https_verify_certificate decides whether an untrusted CA is healthy', async () => {
    const ca = await makeTestCa();
    try {
      const lax = await start('lax', { tls: ca });
      const strict = await start('strict', { tls: ca });
      await route('tls-lax', { scheme: 'grpcs', nodes: { [lax.addr]: 1 }, checks: { active: active({ type: 'grpcs', https_verify_certificate: false }) } });
      await route('tls-strict', { scheme: 'grpcs', nodes: { [strict.addr]: 1 }, checks: { active: active({ type: 'grpcs' }) } });
      await waitFor(async () => (await nodeStatus('upstreams/tls-strict', strict.port)) === 'unhealthy', 8000, 50);
      // The strict probe fails in the TLS handshake: the server never saw a Health/Check call.
      expect(strict.asked).toEqual([]);
      await waitFor(() => lax.asked.length >= 2, 8000, 50);
      expect(await nodeStatus('upstreams/tls-lax', lax.port)).toBe('healthy');
    } finally {
      await ca.cleanup();
    }
  }, 30_000);

  it('a req_headers line HTTP/2 forbids (Connection: keep-alive) is left out: the node stays healthy, the gateway serves', async () => {
    const k = await start('k');
    await route('hdrs', {
      nodes: { [k.addr]: 1 },
      checks: { active: active({ req_headers: ['Connection: keep-alive', 'Transfer-Encoding: chunked', 'X-Probe: yes'] }) },
    });
    // On the previous code the first probe rejected (ERR_HTTP2_INVALID_CONNECTION_HEADERS) and ended the
    // gateway process; here the probes keep reaching the server.
    await waitFor(() => k.asked.length >= 2, 8000, 50);
    expect(await nodeStatus('upstreams/hdrs', k.port)).toBe('healthy');
    expect(await calls('hdrs', 2)).toEqual(['k', 'k']);
  }, 30_000);

  it('grpc_service is an upstream schema extension; an unknown probe type is rejected', async () => {
    const bad = await gw.admin('PUT', '/upstreams/badtype', { scheme: 'grpc', nodes: { '127.0.0.1:1': 1 }, checks: { active: { type: 'grpc2' } } });
    expect(bad.status).toBe(400);
    const badSvc = await gw.admin('PUT', '/upstreams/badsvc', { scheme: 'grpc', nodes: { '127.0.0.1:1': 1 }, checks: { active: { type: 'grpc', grpc_service: 1 } } });
    expect(badSvc.status).toBe(400);
  });
});

describe('passive checks count gRPC statuses', () => {
  it("Envoy's grpc -> HTTP mapping", () => {
    const map = Object.fromEntries(Array.from({ length: 18 }, (_, i) => [i, grpcToHttpStatus(String(i))]));
    expect(map).toEqual({
      0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500,
      16: 401, 17: 500,
    });
    expect(grpcToHttpStatus(undefined)).toBe(500);
  });

  const passive = { healthy: { successes: 1 }, unhealthy: { http_failures: 2, tcp_failures: 2, timeouts: 2 } };

  it.each([
    ['trailers', true],
    ['trailers-only', false],
  ])('a node answering UNAVAILABLE (%s) is ejected; traffic moves to the good node', async (_label, headFirst) => {
    const id = headFirst ? 'pass1' : 'pass2';
    const bad = await start('bad', { failCode: grpc.status.UNAVAILABLE, headFirst });
    const good = await start('good');
    await route(id, { nodes: { [bad.addr]: 1, [good.addr]: 1 }, checks: { passive } });
    const first = await calls(id, 4);
    expect(first.filter((x) => x === 'code:14')).toHaveLength(2);
    await waitFor(async () => (await nodeStatus(`upstreams/${id}`, bad.port)) === 'unhealthy', 5000, 50);
    const hits = bad.hits;
    expect(await calls(id, 6)).toEqual(['good', 'good', 'good', 'good', 'good', 'good']);
    expect(bad.hits).toBe(hits);
  }, 30_000);

  it('NOT_FOUND (404) is not an unhealthy status by default: the node keeps its traffic; listed, it is ejected', async () => {
    const nf = await start('nf', { failCode: grpc.status.NOT_FOUND, headFirst: true });
    const good = await start('good');
    await route('pass3', { nodes: { [nf.addr]: 1, [good.addr]: 1 }, checks: { passive } });
    const out = await calls('pass3', 8);
    expect(out.filter((x) => x === 'code:5')).toHaveLength(4);
    expect(await nodeStatus('upstreams/pass3', nf.port)).toBe('healthy');

    // The same answers against unhealthy.http_statuses [404]: the status in the trailer is mapped and counted.
    const nf2 = await start('nf2', { failCode: grpc.status.NOT_FOUND, headFirst: true });
    const good2 = await start('good2');
    await route('pass3b', {
      nodes: { [nf2.addr]: 1, [good2.addr]: 1 },
      checks: { passive: { ...passive, unhealthy: { ...passive.unhealthy, http_statuses: [404] } } },
    });
    await calls('pass3b', 4);
    await waitFor(async () => (await nodeStatus('upstreams/pass3b', nf2.port)) === 'unhealthy', 5000, 50);
    const hits = nf2.hits;
    expect(await calls('pass3b', 4)).toEqual(['good2', 'good2', 'good2', 'good2']);
    expect(nf2.hits).toBe(hits);
  }, 30_000);

  it('a node that sends its head and then drops the connection (no grpc-status) is ejected', async () => {
    let broken = 0;
    const server = http2.createServer();
    server.on('stream', (stream) => {
      broken++;
      stream.on('error', () => {});
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      // The head and part of a message reach the gateway; then the connection breaks off without a status.
      stream.write(Buffer.from([0, 0, 0, 0, 10, 1, 2]));
      setTimeout(() => stream.session?.destroy(), 100);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const good = await start('good');
      await route('pass5', { nodes: { [`127.0.0.1:${port}`]: 1, [good.addr]: 1 }, checks: { passive } });
      const first = await calls('pass5', 4);
      expect(first.filter((x) => x === 'good')).toHaveLength(2);
      expect(broken).toBe(2);
      await waitFor(async () => (await nodeStatus('upstreams/pass5', port)) === 'unhealthy', 5000, 50);
      expect(await calls('pass5', 4)).toEqual(['good', 'good', 'good', 'good']);
      expect(broken).toBe(2);
    } finally {
      server.close();
    }
  }, 30_000);

  it('a configured status list applies to the mapped status (403 = PERMISSION_DENIED)', async () => {
    const pd = await start('pd', { failCode: grpc.status.PERMISSION_DENIED, headFirst: true });
    const good = await start('good');
    await route('pass4', {
      nodes: { [pd.addr]: 1, [good.addr]: 1 },
      checks: { passive: { ...passive, unhealthy: { ...passive.unhealthy, http_statuses: [403] } } },
    });
    await calls('pass4', 4);
    await waitFor(async () => (await nodeStatus('upstreams/pass4', pd.port)) === 'unhealthy', 5000, 50);
    expect(await calls('pass4', 4)).toEqual(['good', 'good', 'good', 'good']);
  }, 30_000);
});
