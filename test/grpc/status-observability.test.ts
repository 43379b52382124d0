// The final gRPC status of each call reaches the logs and the metrics: $grpc_status in access_log_format and in
// a logger's log_format, and the Switchyard family apisix_grpc_requests_total{route,grpc_status} of the
// Prometheus exporter. A real @grpc/grpc-js client drives a success (grpc-status 0 in the upstream's trailer),
// an upstream error (NOT_FOUND in a trailers-only head), the gateway's own answers (no route: UNIMPLEMENTED;
// node down: UNAVAILABLE), and hand-built gRPC-Web calls whose upstream trailer the grpc-web plugin turns into
// its trailer frame. Only gRPC answers count, with one of the 17 statuses: a plain HTTP answer that carries a
// grpc-status field logs '-' and makes no series, and a gRPC answer with an invalid status counts as UNKNOWN.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { echoClient, EchoRequestType, frame, parseFrames, parseTrailerBlock, startGrpcUpstream, unary, type EchoClient, type GrpcUpstream } from '../helpers/grpc.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';

let gw: TestGateway;
let up: GrpcUpstream;
let c: EchoClient;
let dir: string;
let cleanup: () => Promise<void>;
let logFile: string;
let plain: http.Server;
let bogus: http2.Http2Server;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('swy-grpc-status-'));
  logFile = path.join(dir, 'access.log');
  up = await startGrpcUpstream();
  // An HTTP upstream that echoes the client's x-status into a grpc-status header and trailer.
  plain = http.createServer((req, res) => {
    const v = String(req.headers['x-status']);
    res.setHeader('content-type', 'text/plain');
    res.setHeader('grpc-status', v);
    res.addTrailers({ 'grpc-status': v });
    res.end('plain');
  });
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
  // A gRPC upstream whose trailers-only answers carry the client's x-status as grpc-status, valid or not.
  bogus = http2.createServer();
  bogus.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(headers['x-status']) }, { endStream: true });
  });
  await new Promise<void>((resolve) => bogus.listen(0, '127.0.0.1', resolve));
  gw = await startTestGateway({
    config: { switchyard: { worker_processes: 1, access_log: { enable: true, path: logFile, format: '$http_x_case $status $grpc_status' } } },
  });
  const upstream = { scheme: 'grpc', nodes: { [up.addr]: 1 } };
  const plugins = { prometheus: {} };
  // The loggers' log_format reads the same variable (file-logger stands for them all).
  await gw.put('/routes/ok', {
    uri: '/swytest.Echo/*',
    vars: [['http_x_case', '~~', '^(ok|fail)$']],
    upstream,
    plugins: { ...plugins, 'file-logger': { path: path.join(dir, 'file-logger.log'), log_format: { case: '$http_x_case', grpc: '$grpc_status' } } },
  });
  await gw.put('/routes/down', {
    uri: '/swytest.Echo/*',
    vars: [['http_x_case', '==', 'down']],
    upstream: { scheme: 'grpc', nodes: { [`127.0.0.1:${await freePort()}`]: 1 } },
    plugins,
  });
  await gw.put('/routes/web', { uri: '/web/*', upstream, plugins: { 'grpc-web': {}, prometheus: {} } });
  await gw.put('/routes/plain', { uri: '/plain', upstream: { nodes: { [`127.0.0.1:${(plain.address() as AddressInfo).port}`]: 1 } }, plugins });
  await gw.put('/routes/bogus', {
    uri: '/swytest.Echo/*',
    vars: [['http_x_case', '~~', '^bogus']],
    upstream: { scheme: 'grpc', nodes: { [`127.0.0.1:${(bogus.address() as AddressInfo).port}`]: 1 } },
    plugins,
  });
  // No route matches x-case none: the global rule keeps prometheus on for that answer too (APISIX runs global
  // rules when no route matches).
  await gw.put('/global_rules/1', { plugins: { prometheus: {} } });
  c = echoClient(`127.0.0.1:${gw.port}`);
});

afterAll(async () => {
  c?.close();
  await gw?.close();
  await up?.close();
  plain?.close();
  bogus?.close();
  await cleanup?.();
});

async function call(caseId: string, req: Record<string, unknown>): Promise<number> {
  return unary(c, req, { metadata: { 'x-case': caseId } }).then(
    () => 0,
    (e: grpc.ServiceError) => e.code,
  );
}

async function logLine(caseId: string): Promise<string> {
  const line = await waitFor(async () => {
    const lines = (await readFile(logFile, 'utf8').catch(() => '')).split('\n');
    return lines.find((l) => l.startsWith(`${caseId} `)) ?? null;
  }, 10_000);
  return line!;
}

async function metrics(): Promise<string> {
  const port = (gw.config as any).plugin_attr.prometheus.export_addr.port as number;
  const res = await fetch(`http://127.0.0.1:${port}/apisix/prometheus/metrics`);
  return res.text();
}

function grpcSeries(text: string, route: string, status: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`apisix_grpc_requests_total{route="${route}",grpc_status="${status}"} `));
  return line === undefined ? null : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('grpc_status in the access log and in Prometheus', () => {
  test('success, upstream error, no route, node down and gRPC-Web each log and count their final status', async () => {
    expect(await call('ok', { text: 'hi' })).toBe(grpc.status.OK);
    expect(await call('fail', { text: 'x', fail_code: grpc.status.NOT_FOUND, fail_message: 'no such thing' })).toBe(grpc.status.NOT_FOUND);
    expect(await call('none', { text: 'x' })).toBe(grpc.status.UNIMPLEMENTED);
    expect(await call('down', { text: 'x' })).toBe(grpc.status.UNAVAILABLE);

    // gRPC-Web: the upstream's trailer goes out as the trailer frame (the plugin clears the trailers); a failure
    // comes trailers-only. The log sees both statuses.
    const web = async (caseId: string, failCode: number): Promise<string | undefined> => {
      const body = frame(EchoRequestType.encode(EchoRequestType.fromObject({ text: 'w', fail_code: failCode })).finish());
      const res = await fetch(`${gw.url}/web/swytest.Echo/Unary`, {
        method: 'POST',
        headers: { 'content-type': 'application/grpc-web+proto', 'x-case': caseId },
        body,
      });
      const raw = Buffer.from(await res.arrayBuffer());
      const trailer = parseFrames(raw).find((f) => f.flag === 0x80);
      return res.headers.get('grpc-status') ?? (trailer === undefined ? undefined : parseTrailerBlock(trailer.payload)['grpc-status']);
    };
    expect(await web('web', 0)).toBe('0');
    expect(await web('webfail', grpc.status.PERMISSION_DENIED)).toBe(String(grpc.status.PERMISSION_DENIED));

    expect(await logLine('ok')).toBe('ok 200 0');
    expect(await logLine('fail')).toBe('fail 200 5');
    // The gateway's own answers log their HTTP status (nginx's view) beside the gRPC one the client got.
    expect(await logLine('none')).toBe('none 404 12');
    expect(await logLine('down')).toBe('down 502 14');
    expect(await logLine('web')).toBe('web 200 0');
    expect(await logLine('webfail')).toBe('webfail 200 7');

    const entries = await waitFor(async () => {
      const lines = (await readFile(path.join(dir, 'file-logger.log'), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
      return lines.length >= 2 ? lines.map((l) => JSON.parse(l) as Record<string, unknown>) : null;
    }, 10_000);
    expect(entries!.map((e) => [e.case, e.grpc])).toEqual([
      ['ok', '0'],
      ['fail', '5'],
    ]);

    const text = await metrics();
    expect(text).toContain('# TYPE apisix_grpc_requests_total counter\n');
    expect(grpcSeries(text, 'ok', '0')).toBe(1);
    expect(grpcSeries(text, 'ok', '5')).toBe(1);
    expect(grpcSeries(text, 'down', '14')).toBe(1);
    expect(grpcSeries(text, '', '12')).toBe(1);
    expect(grpcSeries(text, 'web', '0')).toBe(1);
    expect(grpcSeries(text, 'web', '7')).toBe(1);
    // APISIX's own series are unchanged: a gRPC call is an http_status 200 of its route.
    expect(text).toMatch(/apisix_http_status\{code="200",route="ok",/);
  }, 30_000);

  test('a plain HTTP answer carrying grpc-status counts nowhere; an invalid gRPC status counts as UNKNOWN', async () => {
    for (const [i, v] of ['a1', 'b2', '77', '0'].entries()) {
      const res = await fetch(`${gw.url}/plain`, { headers: { 'x-case': `plain${i}`, 'x-status': v } });
      expect(res.status).toBe(200);
      expect(res.headers.get('grpc-status')).toBe(v);
      expect(await res.text()).toBe('plain');
    }
    // A status outside 0-16 is UNKNOWN for the log and the metric (the client sees the upstream's value as sent).
    for (const [i, v] of ['x9', '17', '123456', '14'].entries()) {
      const code = await unary(c, { text: 'x' }, { metadata: { 'x-case': `bogus${i}`, 'x-status': v } }).then(
        () => 0,
        (e: grpc.ServiceError) => e.code,
      );
      if (v === '14') expect(code).toBe(grpc.status.UNAVAILABLE);
      else expect(code).not.toBe(grpc.status.OK);
    }
    for (let i = 0; i < 4; i++) expect(await logLine(`plain${i}`)).toBe(`plain${i} 200 -`);
    expect(await logLine('bogus0')).toBe('bogus0 200 2');
    expect(await logLine('bogus2')).toBe('bogus2 200 2');
    expect(await logLine('bogus3')).toBe('bogus3 200 14');

    const text = await metrics();
    expect(text).toMatch(/apisix_http_status\{code="200",route="plain",/);
    expect(text).not.toContain('apisix_grpc_requests_total{route="plain"');
    const bogusSeries = text.split('\n').filter((l) => l.startsWith('apisix_grpc_requests_total{route="bogus"'));
    expect(bogusSeries.sort()).toEqual(['apisix_grpc_requests_total{route="bogus",grpc_status="14"} 1', 'apisix_grpc_requests_total{route="bogus",grpc_status="2"} 3']);
  }, 30_000);
});
