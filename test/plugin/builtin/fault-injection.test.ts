import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { faultInjectionPlugin as def } from '../../../src/plugin/builtin/fault-injection.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { confError } from '../helpers.ts';

describe('fault-injection', () => {
  let gw: TestGateway;
  let up: EchoServer;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('a');
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/1', {
      uri: '/abort',
      plugins: { 'fault-injection': { abort: { http_status: 418, body: 'client addr: $remote_addr\n', headers: { 'X-Fault': '$request_method' } } } },
      upstream,
    });
    await gw.put('/routes/2', {
      uri: '/only-jack',
      plugins: { 'fault-injection': { abort: { http_status: 403, vars: [[['arg_name', '==', 'jack']], [['arg_age', '==', 18]]] } } },
      upstream,
    });
    await gw.put('/routes/3', {
      uri: '/delay',
      plugins: { 'fault-injection': { delay: { duration: 0.2 }, abort: { http_status: 200, body: 'late', percentage: 100 } } },
      upstream,
    });
    await gw.put('/routes/4', {
      uri: '/never',
      plugins: { 'fault-injection': { abort: { http_status: 500, percentage: 0 } } },
      upstream,
    });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  it('validates like APISIX', () => {
    expect(confError(def, {})).not.toBeNull();
    expect(confError(def, { abort: { http_status: 100 } })).not.toBeNull();
    expect(confError(def, { abort: { body: 'x' } })).not.toBeNull();
    expect(confError(def, { delay: { duration: 1, percentage: 101 } })).not.toBeNull();
    expect(confError(def, { abort: { http_status: 500, vars: [[['a', 'bogus', 1]]] } })).toMatch(/invalid operator/);
    expect(confError(def, { abort: { http_status: 500, vars: [[['arg_a', '==', '1']]] } })).toBeNull();
  });

  it('aborts with the status, the var-rendered body and headers', async () => {
    const r = await fetch(`${gw.url}/abort`);
    expect(r.status).toBe(418);
    expect(r.headers.get('x-fault')).toBe('GET');
    expect(await r.text()).toBe('client addr: 127.0.0.1\n');
    expect(up.seen.length).toBe(0);
  });

  it('applies only when one of the vars expressions matches', async () => {
    expect((await fetch(`${gw.url}/only-jack?name=jack`)).status).toBe(403);
    expect((await fetch(`${gw.url}/only-jack?age=18`)).status).toBe(403);
    const r = await fetch(`${gw.url}/only-jack?name=rose`);
    expect(r.status).toBe(200);
    expect(up.seen.length).toBe(1);
  });

  it('delays on a timer without blocking other requests, then continues', async () => {
    const delayed = fetch(`${gw.url}/delay`);
    // A request sent meanwhile is served while the first one waits.
    const other = await fetch(`${gw.url}/only-jack`);
    expect(other.status).toBe(200);
    const r = await delayed;
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('late');
  });

  it('never aborts at percentage 0', async () => {
    for (let i = 0; i < 5; i++) expect((await fetch(`${gw.url}/never`)).status).toBe(200);
  });
});
