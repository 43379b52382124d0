// TLS versions and cipher suites, per ssl object (`ssl_protocols`) and per listener (apisix.ssl.ssl_protocols,
// ssl_ciphers), driven by openssl s_client limited to one version or one suite, and by curl through to a route.
// An ssl object's ssl_protocols replaces the listener's for its SNIs (APISIX: dynamic over static).
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { exec, makePki, servedCert, type Pem, type Pki } from './pki.ts';

let tmp: { dir: string; cleanup(): Promise<void> };
let pki: Pki;
let c13: Pem;
let c12: Pem;
let cAny: Pem;
let up: EchoServer;
/** Listener defaults (TLSv1.2 TLSv1.3). */
let gw: TestGateway;
/** apisix.ssl.ssl_protocols: TLSv1.3 only. */
let only13: TestGateway;
let only13Port = 0;
/** apisix.ssl.ssl_ciphers: one TLS 1.2 suite. */
let oneCipher: TestGateway;
let oneCipherPort = 0;

const SUITE = 'ECDHE-ECDSA-AES128-GCM-SHA256';
const OTHER_SUITE = 'ECDHE-ECDSA-AES256-GCM-SHA384';

beforeAll(async () => {
  tmp = await tempDir('swy-protocols-');
  pki = makePki(tmp.dir);
  c13 = pki.server('v13', 'v13.test', ['v13.test'], '0E13');
  c12 = pki.server('v12', 'v12.test', ['v12.test'], '0E12');
  cAny = pki.server('any', 'any.test', ['any.test'], '0E00');
  up = await startEcho('proto');
  [only13Port, oneCipherPort] = [await freePort(), await freePort()];
  [gw, only13, oneCipher] = await Promise.all([
    startTestGateway(),
    startTestGateway({ config: { apisix: { ssl: { listen: [{ ip: '127.0.0.1', port: only13Port }], ssl_protocols: 'TLSv1.3' } } } }),
    startTestGateway({ config: { apisix: { ssl: { listen: [{ ip: '127.0.0.1', port: oneCipherPort }], ssl_ciphers: SUITE } } } }),
  ]);
  for (const g of [gw, only13, oneCipher]) {
    await g.put('/ssls/v13', { cert: c13.cert, key: c13.key, snis: ['v13.test'], ssl_protocols: ['TLSv1.3'] });
    await g.put('/ssls/v12', { cert: c12.cert, key: c12.key, snis: ['v12.test'], ssl_protocols: ['TLSv1.2'] });
    await g.put('/ssls/any', { cert: cAny.cert, key: cAny.key, snis: ['any.test'] });
    await g.put('/routes/p', { uri: '/*', upstream: { nodes: { [up.addr]: 1 } } });
  }
});

afterAll(async () => {
  await Promise.all([gw?.close(), only13?.close(), oneCipher?.close(), up?.close()]);
  await tmp?.cleanup();
});

async function curl(name: string, at: number, extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return exec('curl', ['-sS', '--max-time', '10', '--cacert', pki.caFile, '--resolve', `${name}:${at}:127.0.0.1`, ...extra, `https://${name}:${at}/p`]);
}

describe('ssl object ssl_protocols', () => {
  test('an object limited to TLSv1.3 refuses a TLSv1.2-only client; TLSv1.3 and other SNIs still connect', async () => {
    const port = gw.httpsPort;
    const refused = await servedCert(port, 'v13.test', ['-tls1_2']);
    expect(refused.ok, refused.output).toBe(false);
    expect(refused.output).toMatch(/protocol version/);
    const ok = await servedCert(port, 'v13.test', ['-tls1_3']);
    expect(ok.ok, ok.output).toBe(true);
    expect(ok.protocol).toBe('TLSv1.3');
    expect(ok.serial).toBe(c13.serial);
    const other = await servedCert(port, 'any.test', ['-tls1_2']);
    expect(other.ok, other.output).toBe(true);
    expect(other.protocol).toBe('TLSv1.2');
    // The same through curl: capped at TLS 1.2 it fails, otherwise it is proxied over TLS 1.3.
    expect((await curl('v13.test', port, ['--tls-max', '1.2'])).code).not.toBe(0);
    const r = await curl('v13.test', port, []);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).server).toBe('proto');
  });

  test('an object limited to TLSv1.2 negotiates TLSv1.2 with a client that offers TLSv1.3 too', async () => {
    const r = await servedCert(gw.httpsPort, 'v12.test');
    expect(r.ok, r.output).toBe(true);
    expect(r.protocol).toBe('TLSv1.2');
    expect((await servedCert(gw.httpsPort, 'v12.test', ['-tls1_3'])).ok).toBe(false);
  });

  test('an object\'s ssl_protocols replaces the listener\'s (TLSv1.2 on a TLSv1.3-only listener)', async () => {
    const r = await servedCert(only13Port, 'v12.test', ['-tls1_2']);
    expect(r.ok, r.output).toBe(true);
    expect(r.protocol).toBe('TLSv1.2');
  });
});

describe('listener apisix.ssl', () => {
  test('ssl_protocols: a TLSv1.2 client is refused, TLSv1.3 connects', async () => {
    const refused = await servedCert(only13Port, 'any.test', ['-tls1_2']);
    expect(refused.ok, refused.output).toBe(false);
    expect(refused.output).toMatch(/protocol version/);
    const ok = await servedCert(only13Port, 'any.test', ['-tls1_3']);
    expect(ok.ok, ok.output).toBe(true);
    expect(ok.protocol).toBe('TLSv1.3');
    expect((await curl('any.test', only13Port, ['--tls-max', '1.2'])).code).not.toBe(0);
    expect((await curl('any.test', only13Port, [])).code).toBe(0);
  });

  test('ssl_ciphers: a TLS 1.2 client offering only another suite is refused, the listed suite connects', async () => {
    const refused = await servedCert(oneCipherPort, 'any.test', ['-tls1_2', '-cipher', OTHER_SUITE]);
    expect(refused.ok, refused.output).toBe(false);
    expect(refused.output).toMatch(/handshake failure/);
    const ok = await servedCert(oneCipherPort, 'any.test', ['-tls1_2', '-cipher', SUITE]);
    expect(ok.ok, ok.output).toBe(true);
    expect(ok.cipher).toBe(SUITE);
    // The default listener takes the other suite: the refusal above is the listener's setting.
    const dflt = await servedCert(gw.httpsPort, 'any.test', ['-tls1_2', '-cipher', OTHER_SUITE]);
    expect(dflt.ok, dflt.output).toBe(true);
    expect(dflt.cipher).toBe(OTHER_SUITE);
    const r = await curl('any.test', oneCipherPort, ['--tlsv1.2', '--tls-max', '1.2', '--ciphers', SUITE]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).server).toBe('proto');
  });
});
