import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_BODY_LIMIT_KEY, clientControlPlugin as def, requestBodyLimit } from '../../../src/plugin/builtin/client-control.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { confError, fakeContext, instantiate } from '../helpers.ts';

describe('client-control', () => {
  let gw: TestGateway;
  let up: EchoServer;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('a');
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/1', { uri: '/small', plugins: { 'client-control': { max_body_size: 10 } }, upstream });
    await gw.put('/routes/2', { uri: '/unlimited', plugins: { 'client-control': { max_body_size: 0 } }, upstream });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  it('validates like APISIX', () => {
    expect(confError(def, { max_body_size: -1 })).not.toBeNull();
    expect(confError(def, { max_body_size: 1.5 })).not.toBeNull();
    expect(confError(def, {})).toBeNull();
  });

  it('answers 413 (nginx error page) when Content-Length exceeds max_body_size', async () => {
    let r = await fetch(`${gw.url}/small`, { method: 'POST', body: 'x'.repeat(11) });
    expect(r.status).toBe(413);
    expect(r.headers.get('content-type')).toContain('text/html');
    expect(await r.text()).toContain('413 Request Entity Too Large');
    r = await fetch(`${gw.url}/small`, { method: 'POST', body: 'x'.repeat(10) });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { bodyLength: number }).bodyLength).toBe(10);
    r = await fetch(`${gw.url}/unlimited`, { method: 'POST', body: 'x'.repeat(5000) });
    expect(r.status).toBe(200);
  });

  it('publishes the limit for streamed bodies', () => {
    const inst = instantiate(def, { max_body_size: 64 });
    const ctx = fakeContext({ headers: { 'transfer-encoding': 'chunked' } });
    expect(requestBodyLimit(ctx, 1000)).toBe(1000);
    expect(inst.rewrite!(ctx)).toBeUndefined();
    expect(ctx.pluginData.get(CLIENT_BODY_LIMIT_KEY)).toBe(64);
    expect(requestBodyLimit(ctx, 1000)).toBe(64);
  });
});
