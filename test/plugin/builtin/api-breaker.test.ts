import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { apiBreakerPlugin as def } from '../../../src/plugin/builtin/api-breaker.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { waitFor } from '../../helpers/proc.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { confError, fakeContext, instantiate } from '../helpers.ts';

describe('api-breaker', () => {
  let gw: TestGateway;
  let up: EchoServer;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('a');
    const upstream = { nodes: { [up.addr]: 1 } };
    // The client path stays /brk (the breaker key); the upstream path comes from x-status.
    await gw.put('/routes/1', {
      uri: '/brk',
      plugins: {
        'proxy-rewrite': { uri: '/status/$http_x_status' },
        'api-breaker': {
          break_response_code: 502,
          break_response_body: 'broken',
          break_response_headers: [{ key: 'X-Breaker', value: 'from $remote_addr' }],
          unhealthy: { http_statuses: [500, 503], failures: 2 },
          healthy: { http_statuses: [200], successes: 1 },
        },
      },
      upstream,
    });
    await gw.put('/routes/2', {
      uri: '/plain',
      plugins: { 'proxy-rewrite': { uri: '/status/500' }, 'api-breaker': { break_response_code: 503, unhealthy: { failures: 1 } } },
      upstream,
    });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const call = (path: string, status: number) => fetch(`${gw.url}${path}`, { headers: { 'x-status': String(status) } });

  it('validates like APISIX', () => {
    expect(confError(def, {})).not.toBeNull();
    expect(confError(def, { break_response_code: 199 })).not.toBeNull();
    expect(confError(def, { break_response_code: 502, max_breaker_sec: 2 })).not.toBeNull();
    expect(confError(def, { break_response_code: 502, unhealthy: { http_statuses: [404] } })).not.toBeNull();
    expect(confError(def, { break_response_code: 502, healthy: { http_statuses: [500] } })).not.toBeNull();
    expect(confError(def, { break_response_code: 502 })).toBeNull();
  });

  it('breaks after `failures` unhealthy statuses and answers the break response', async () => {
    expect((await call('/brk', 500)).status).toBe(500);
    expect((await call('/brk', 503)).status).toBe(503);
    const before = up.seen.length;
    const r = await call('/brk', 200);
    expect(r.status).toBe(502);
    expect(r.headers.get('x-breaker')).toBe('from 127.0.0.1');
    expect(await r.text()).toBe('broken');
    expect(up.seen.length).toBe(before);
  });

  it('lets a request through once the window passed; a healthy status clears the state', async () => {
    await waitFor(async () => (await call('/brk', 200)).status === 200, 8_000, 200);
    // State cleared: one failure alone does not break again.
    expect((await call('/brk', 500)).status).toBe(500);
    expect((await call('/brk', 200)).status).toBe(200);
  });

  it('answers nginx error page when no body is configured', async () => {
    expect((await fetch(`${gw.url}/plain`)).status).toBe(500);
    const r = await fetch(`${gw.url}/plain`);
    expect(r.status).toBe(503);
    expect(await r.text()).toContain('503 Service Temporarily Unavailable');
  });

  it('grows the window exponentially, capped by max_breaker_sec', () => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
    const inst = instantiate(def, { break_response_code: 599, max_breaker_sec: 3, unhealthy: { failures: 1 } });
    const ctx = fakeContext({ headers: { host: 'exp.test' }, path: '/exp' });
    (ctx as { upstreamStatus: number }).upstreamStatus = 500;
    inst.log!(ctx);
    expect(inst.access!(ctx)).toEqual({ status: 599 });
    vi.setSystemTime(1_000_000 + 2_001);
    expect(inst.access!(ctx)).toBeUndefined();
    inst.log!(ctx);
    vi.setSystemTime(1_000_000 + 2_001 + 2_999);
    expect(inst.access!(ctx)).toEqual({ status: 599 });
    vi.setSystemTime(1_000_000 + 2_001 + 3_001);
    expect(inst.access!(ctx)).toBeUndefined();
  });
});
