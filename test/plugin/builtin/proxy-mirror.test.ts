import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mirrorsInFlight, proxyMirrorPlugin as def } from '../../../src/plugin/builtin/proxy-mirror.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { freePort } from '../../helpers/ports.ts';
import { waitFor } from '../../helpers/proc.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { confError } from '../helpers.ts';

describe('proxy-mirror', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let mirror: EchoServer;

  beforeAll(async () => {
    [gw, up, mirror] = await Promise.all([startTestGateway(), startEcho('main'), startEcho('mirror')]);
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/1', { uri: '/pm/*', plugins: { 'proxy-mirror': { host: `http://${mirror.addr}` } }, upstream });
    await gw.put('/routes/2', {
      uri: '/prefixed/*',
      plugins: { 'proxy-mirror': { host: `http://${mirror.addr}`, path: '/copy', path_concat_mode: 'prefix' } },
      upstream,
    });
    await gw.put('/routes/3', { uri: '/dead/*', plugins: { 'proxy-mirror': { host: `http://127.0.0.1:${await freePort()}` } }, upstream });
    await gw.put('/routes/4', {
      uri: '/slow-mirror/*',
      plugins: { 'proxy-mirror': { host: `http://${mirror.addr}`, path: '/delay/2000' } },
      upstream,
    });
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.all([up?.close(), mirror?.close()]);
  });

  it('validates like APISIX', () => {
    expect(confError(def, {})).not.toBeNull();
    expect(confError(def, { host: '127.0.0.1:80' })).not.toBeNull();
    expect(confError(def, { host: 'http://127.0.0.1:80/x' })).not.toBeNull();
    expect(confError(def, { host: 'http://127.0.0.1:80', path: 'x' })).not.toBeNull();
    expect(confError(def, { host: 'http://127.0.0.1:80', sample_ratio: 0 })).not.toBeNull();
    expect(confError(def, { host: 'https://[::1]:8443', path: '/a/b' })).toBeNull();
  });

  it('mirrors method, uri, headers and body in the background', async () => {
    const r = await fetch(`${gw.url}/pm/x?q=1`, { method: 'POST', body: 'hello', headers: { 'x-trace': 't1' } });
    expect(r.status).toBe(200);
    const main = (await r.json()) as { server: string; bodyLength: number };
    expect(main).toMatchObject({ server: 'main', bodyLength: 5 });
    await waitFor(() => mirror.seen.length === 1, 5_000, 20);
    expect(mirror.seen[0]).toMatchObject({ method: 'POST', url: '/pm/x?q=1', bodyLength: 5 });
    expect(mirror.seen[0]!.headers['x-trace']).toBe('t1');
  });

  it('prefixes the request uri with `path` in prefix mode', async () => {
    expect((await fetch(`${gw.url}/prefixed/y?a=b`)).status).toBe(200);
    await waitFor(() => mirror.seen.some((s) => s.url === '/copy/prefixed/y?a=b'), 5_000, 20);
  });

  it('never affects the main response (unreachable or slow mirror)', async () => {
    const r = await fetch(`${gw.url}/dead/z`);
    expect(r.status).toBe(200);
    expect(((await r.json()) as { server: string }).server).toBe('main');
    const slow = await fetch(`${gw.url}/slow-mirror/z`);
    expect(slow.status).toBe(200);
    // The main answer arrived while the mirror was still waiting on its delayed (2 s) upstream.
    expect(mirrorsInFlight()).toBe(1);
    await waitFor(() => mirrorsInFlight() === 0, 5_000, 20);
  });
});
