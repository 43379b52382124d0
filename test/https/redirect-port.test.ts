// redirect's http_to_https port, as APISIX's get_port (apisix/plugins/redirect.lua): plugin_attr.redirect.https_port
// when set, else a port of apisix.ssl.listen while ssl is enabled, else none; 443 is never written. The
// Location of the first case is then fetched over HTTPS: it reaches the gateway's own HTTPS listener.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { exec, makePki, type Pki } from './pki.ts';

let tmp: { dir: string; cleanup(): Promise<void> };
let pki: Pki;
let up: EchoServer;
/** ssl.listen from the helper, no plugin_attr. */
let listen: TestGateway;
/** plugin_attr.redirect.https_port set. */
let attr: TestGateway;
/** ssl.enable false. */
let noSsl: TestGateway;
/** The https_port of `attr` (nothing listens there: only the Location is checked). */
let portA = 0;

beforeAll(async () => {
  tmp = await tempDir('swy-redirect-');
  pki = makePki(tmp.dir);
  up = await startEcho('R');
  portA = await freePort();
  [listen, attr, noSsl] = await Promise.all([
    startTestGateway(),
    startTestGateway({ config: { plugin_attr: { redirect: { https_port: portA } } } }),
    startTestGateway({ config: { apisix: { ssl: { enable: false } } } }),
  ]);
  const cert = pki.server('r', 'r.test', ['r.test'], '0F11');
  for (const g of [listen, attr, noSsl]) {
    await g.put('/ssls/r', { cert: cert.cert, key: cert.key, snis: ['r.test'] });
    await g.put('/routes/r', { uri: '/*', hosts: ['r.test'], plugins: { redirect: { http_to_https: true } }, upstream: { nodes: { [up.addr]: 1 } } });
  }
});

afterAll(async () => {
  await Promise.all([listen?.close(), attr?.close(), noSsl?.close(), up?.close()]);
  await tmp?.cleanup();
});

async function location(gw: TestGateway): Promise<{ status: string; location: string }> {
  const r = await exec('curl', ['-sS', '--max-time', '10', '-H', 'Host: r.test', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', `${gw.url}/a/b?c=1`]);
  const [status = '', loc = ''] = r.stdout.split(' ');
  return { status, location: loc };
}

describe('redirect http_to_https port', () => {
  test('no https_port: a port of apisix.ssl.listen, and the Location reaches the HTTPS listener', async () => {
    const r = await location(listen);
    expect(r).toEqual({ status: '301', location: `https://r.test:${listen.httpsPort}/a/b?c=1` });
    const follow = await exec('curl', ['-sS', '--max-time', '10', '--cacert', pki.caFile, '--resolve', `r.test:${listen.httpsPort}:127.0.0.1`, '-w', '\n%{http_code}', r.location]);
    expect(follow.stdout.endsWith('\n200'), follow.stderr).toBe(true);
    expect(JSON.parse(follow.stdout.slice(0, follow.stdout.lastIndexOf('\n'))).url).toBe('/a/b?c=1');
  });

  test('plugin_attr.redirect.https_port wins over ssl.listen', async () => {
    expect(await location(attr)).toEqual({ status: '301', location: `https://r.test:${portA}/a/b?c=1` });
  });

  test('ssl disabled and no https_port: no port in the Location', async () => {
    expect(await location(noSsl)).toEqual({ status: '301', location: 'https://r.test/a/b?c=1' });
  });
});
