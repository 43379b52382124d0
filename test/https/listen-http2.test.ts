// apisix.ssl.listen[].enable_http2 (APISIX 3.0-3.8's per-entry switch): an entry that sets it decides whether
// its port offers h2 by ALPN; entries without it follow apisix.enable_http2. curl --http2 is the client: it
// asks for h2 and falls back to HTTP/1.1 when the server does not offer it.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { exec, makePki, type Pki } from './pki.ts';

let tmp: { dir: string; cleanup(): Promise<void> };
let pki: Pki;
let up: EchoServer;
/** apisix.enable_http2 on (the default): one entry turns h2 off, one follows. */
let on: TestGateway;
/** apisix.enable_http2 off: one entry turns h2 on, one follows. */
let off: TestGateway;
const ports = { onOff: 0, onDefault: 0, offOn: 0, offDefault: 0 };

beforeAll(async () => {
  tmp = await tempDir('swy-h2listen-');
  pki = makePki(tmp.dir);
  const cert = pki.server('h', 'h.test', ['h.test'], '0F01');
  up = await startEcho('H');
  for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
  const listen = (noH2: number, plain: number, h2: boolean) => [{ ip: '127.0.0.1', port: noH2, enable_http2: h2 }, { ip: '127.0.0.1', port: plain }];
  [on, off] = await Promise.all([
    startTestGateway({ config: { apisix: { ssl: { listen: listen(ports.onOff, ports.onDefault, false) } } } }),
    startTestGateway({ config: { apisix: { enable_http2: false, ssl: { listen: listen(ports.offOn, ports.offDefault, true) } } } }),
  ]);
  for (const g of [on, off]) {
    await g.put('/ssls/h', { cert: cert.cert, key: cert.key, snis: ['h.test'] });
    await g.put('/routes/h', { uri: '/*', hosts: ['h.test'], upstream: { nodes: { [up.addr]: 1 } } });
  }
});

afterAll(async () => {
  await Promise.all([on?.close(), off?.close(), up?.close()]);
  await tmp?.cleanup();
});

async function versionAt(port: number): Promise<{ version: string; status: string; stderr: string }> {
  const r = await exec('curl', [
    '-sS', '--http2', '--max-time', '10', '--cacert', pki.caFile, '--resolve', `h.test:${port}:127.0.0.1`,
    '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `https://h.test:${port}/v`,
  ]);
  const [version = '', status = ''] = r.stdout.split(' ');
  return { version, status, stderr: r.stderr };
}

describe('ssl.listen enable_http2 per entry', () => {
  test('enable_http2: false on an entry: curl --http2 gets HTTP/1.1 there, h2 on the entry that follows apisix.enable_http2', async () => {
    const noH2 = await versionAt(ports.onOff);
    expect(noH2, noH2.stderr).toMatchObject({ version: '1.1', status: '200' });
    const h2 = await versionAt(ports.onDefault);
    expect(h2, h2.stderr).toMatchObject({ version: '2', status: '200' });
  });

  test('enable_http2: true on an entry wins over apisix.enable_http2: false', async () => {
    const h2 = await versionAt(ports.offOn);
    expect(h2, h2.stderr).toMatchObject({ version: '2', status: '200' });
    const noH2 = await versionAt(ports.offDefault);
    expect(noH2, noH2.stderr).toMatchObject({ version: '1.1', status: '200' });
  });
});
