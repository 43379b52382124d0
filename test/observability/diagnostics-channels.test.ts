// The HTTP pipeline's diagnostics_channel events (src/pipeline/channels.ts) as an embedder sees them: a
// subscriber in the test process, an in-process gateway, real requests through it. Messages are read inside
// the subscriber (they belong to live requests), copied into plain records and checked afterwards.
import diagnostics_channel from 'node:diagnostics_channel';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  HTTP_REQUEST_END,
  HTTP_REQUEST_START,
  HTTP_UPSTREAM_ERROR,
  type HttpRequestMessage,
  type HttpUpstreamErrorMessage,
} from '../../src/pipeline/channels.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';

interface Seen {
  method: string;
  path: string;
  routeId: string | null;
  serviceId: string | null;
  upstreamNode: string | null;
  status: number;
  latencyMs: number;
  upstreamLatencyMs: number;
}

let gw: TestGateway;
let echo: EchoServer;
let deadPort: number;
const starts: Seen[] = [];
const ends: Seen[] = [];
const errors: (Omit<HttpUpstreamErrorMessage, 'request'> & { requestPath: string; requestNode: string | null })[] = [];

function copy(m: HttpRequestMessage): Seen {
  return {
    method: m.method,
    path: m.path,
    routeId: m.routeId,
    serviceId: m.serviceId,
    upstreamNode: m.upstreamNode,
    status: m.status,
    latencyMs: m.latencyMs,
    upstreamLatencyMs: m.upstreamLatencyMs,
  };
}

const onStart = (m: unknown): void => void starts.push(copy(m as HttpRequestMessage));
const onEnd = (m: unknown): void => void ends.push(copy(m as HttpRequestMessage));
const onError = (m: unknown): void => {
  const { request, ...rest } = m as HttpUpstreamErrorMessage;
  errors.push({ ...rest, requestPath: request.path, requestNode: request.upstreamNode });
};

beforeAll(async () => {
  echo = await startEcho('diag');
  deadPort = await freePort(); // nothing listens: connections are refused
  gw = await startTestGateway();
  diagnostics_channel.subscribe(HTTP_REQUEST_START, onStart);
  diagnostics_channel.subscribe(HTTP_REQUEST_END, onEnd);
  diagnostics_channel.subscribe(HTTP_UPSTREAM_ERROR, onError);
}, 30_000);

afterAll(async () => {
  diagnostics_channel.unsubscribe(HTTP_REQUEST_START, onStart);
  diagnostics_channel.unsubscribe(HTTP_REQUEST_END, onEnd);
  diagnostics_channel.unsubscribe(HTTP_UPSTREAM_ERROR, onError);
  await gw?.close();
  await echo?.close();
});

/** The end event of the one request to `path` (end is published after the log phase, maybe after the reply). */
async function endOf(path: string): Promise<Seen> {
  await waitFor(() => ends.some((e) => e.path === path), 5000, 10);
  const mine = ends.filter((e) => e.path === path);
  expect(mine).toHaveLength(1);
  return mine[0]!;
}

describe('switchyard:http:request:start / :end', () => {
  it('carry route, service, upstream node, status and latency of a proxied request', async () => {
    await gw.put('/upstreams/diag', { nodes: { [`127.0.0.1:${echo.port}`]: 1 }, type: 'roundrobin' });
    await gw.put('/services/diag-svc', { upstream_id: 'diag' });
    await gw.put('/routes/diag', { uri: '/diag/*', service_id: 'diag-svc' });

    const res = await fetch(`${gw.url}/diag/ok`);
    expect(res.status).toBe(200);
    await res.text();

    const start = starts.find((s) => s.path === '/diag/ok');
    expect(start).toMatchObject({ method: 'GET', routeId: null, serviceId: null, upstreamNode: null, status: 0 });
    const end = await endOf('/diag/ok');
    expect(end).toMatchObject({
      method: 'GET',
      routeId: 'diag',
      serviceId: 'diag-svc',
      upstreamNode: `127.0.0.1:${echo.port}`,
      status: 200,
    });
    expect(end.latencyMs).toBeGreaterThan(0);
    expect(end.upstreamLatencyMs).toBeGreaterThan(0);
    expect(end.upstreamLatencyMs).toBeLessThanOrEqual(end.latencyMs);
  });

  it('a request no route matches ends with 404 and no route or node', async () => {
    const res = await fetch(`${gw.url}/nowhere/at/all`);
    expect(res.status).toBe(404);
    await res.text();
    expect(await endOf('/nowhere/at/all')).toMatchObject({ routeId: null, serviceId: null, upstreamNode: null, status: 404 });
  });
});

describe('switchyard:http:upstream:error', () => {
  it('is published for each failed attempt, then the retry ends the request on the live node', async () => {
    // The higher priority node is picked first; it refuses, the retry goes to the live one.
    await gw.put('/routes/diag-retry', {
      uri: '/retry',
      upstream: {
        type: 'roundrobin',
        retries: 1,
        nodes: [
          { host: '127.0.0.1', port: deadPort, weight: 1, priority: 10 },
          { host: '127.0.0.1', port: echo.port, weight: 1, priority: 0 },
        ],
      },
    });
    const res = await fetch(`${gw.url}/retry`);
    expect(res.status).toBe(200);
    await res.text();
    const end = await endOf('/retry');
    expect(end).toMatchObject({ routeId: 'diag-retry', upstreamNode: `127.0.0.1:${echo.port}`, status: 200 });
    expect(errors.filter((e) => e.requestPath === '/retry')).toEqual([
      {
        routeId: 'diag-retry',
        serviceId: null,
        upstreamNode: `127.0.0.1:${deadPort}`,
        requestPath: '/retry',
        requestNode: `127.0.0.1:${deadPort}`,
        kind: 'connect',
        message: expect.any(String),
        retryable: true,
      },
    ]);
  });

  it('a request whose only node is down ends with 502 after its error event', async () => {
    await gw.put('/routes/diag-dead', { uri: '/dead', upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${deadPort}`]: 1 } } });
    const res = await fetch(`${gw.url}/dead`);
    expect(res.status).toBe(502);
    await res.text();
    expect(await endOf('/dead')).toMatchObject({ routeId: 'diag-dead', upstreamNode: `127.0.0.1:${deadPort}`, status: 502 });
    const mine = errors.filter((e) => e.requestPath === '/dead');
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ routeId: 'diag-dead', upstreamNode: `127.0.0.1:${deadPort}`, kind: 'connect' });
  });

  it('covers WebSocket tunnels: a refused tunnel connect is published too', async () => {
    await gw.put('/routes/diag-ws', { uri: '/ws', enable_websocket: true, upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${deadPort}`]: 1 } } });
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${gw.url}/ws`, {
        headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('upgrade', () => reject(new Error('upgraded to a dead node')));
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(502);
    await waitFor(() => errors.some((e) => e.requestPath === '/ws'), 5000, 10);
    expect(errors.filter((e) => e.requestPath === '/ws')).toEqual([
      expect.objectContaining({ routeId: 'diag-ws', upstreamNode: `127.0.0.1:${deadPort}`, kind: 'connect', retryable: true }),
    ]);
  });
});
