// Several certificates for one SNI by key type (an ssl object's cert/key plus certs/keys): the handshake serves
// the one the client can verify. openssl s_client restricts what it accepts (TLS 1.3 signature algorithms, TLS 1.2
// cipher suites) and reads the served certificate's serial and key type; curl then drives a request over each.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { EC, exec, makePki, ONLY_EC_12, ONLY_EC_13, ONLY_RSA_12, ONLY_RSA_13, RSA, servedCert, type Pem, type Pki } from './pki.ts';

let tmp: { dir: string; cleanup(): Promise<void> };
let pki: Pki;
let rsa: Pem;
let ec: Pem;
let rsa2: Pem;
let ec2: Pem;
let up: EchoServer;
let gw: TestGateway;
let port = 0;


beforeAll(async () => {
  tmp = await tempDir('swy-keytypes-');
  pki = makePki(tmp.dir);
  rsa = pki.serverRsa('rsa', 'dual.test rsa', ['dual.test'], '0C01');
  ec = pki.server('ec', 'dual.test ec', ['dual.test'], '0C02');
  rsa2 = pki.serverRsa('rsa2', 'rev.test rsa', ['rev.test'], '0D01');
  ec2 = pki.server('ec2', 'rev.test ec', ['rev.test'], '0D02');
  up = await startEcho('dual');
  port = await freePort();
  gw = await startTestGateway({ config: { apisix: { ssl: { listen: [{ ip: '127.0.0.1', port }], fallback_sni: 'dual.test' } } } });
  // RSA in cert/key and ECDSA in certs/keys, and the other way round: neither position decides.
  await gw.put('/ssls/dual', { cert: rsa.cert, key: rsa.key, certs: [ec.cert], keys: [ec.key], snis: ['dual.test'] });
  await gw.put('/ssls/rev', { cert: ec2.cert, key: ec2.key, certs: [rsa2.cert], keys: [rsa2.key], snis: ['rev.test'] });
  await gw.put('/routes/dual', { uri: '/*', upstream: { nodes: { [up.addr]: 1 } } });
});

afterAll(async () => {
  await Promise.all([gw?.close(), up?.close()]);
  await tmp?.cleanup();
});

describe('an RSA and an ECDSA certificate for one SNI', () => {
  test.each([
    ['dual.test', () => ({ rsa, ec })],
    ['rev.test', () => ({ rsa: rsa2, ec: ec2 })],
  ])('%s: TLS 1.3 by signature algorithm, TLS 1.2 by cipher suite', async (sni, pems) => {
    const { rsa: r, ec: e } = pems();
    for (const [args, want, type] of [
      [ONLY_EC_13, e, EC],
      [ONLY_RSA_13, r, RSA],
      [ONLY_EC_12, e, EC],
      [ONLY_RSA_12, r, RSA],
    ] as const) {
      const got = await servedCert(port, sni, args);
      expect(got.ok, `${args.join(' ')}: ${got.output}`).toBe(true);
      expect(got.serial, args.join(' ')).toBe(want.serial);
      expect(got.keyType, args.join(' ')).toBe(type);
    }
  });

  test('a client without SNI gets fallback_sni\'s pair, chosen the same way', async () => {
    expect((await servedCert(port, null, ONLY_RSA_13)).serial).toBe(rsa.serial);
    expect((await servedCert(port, null, ONLY_EC_13)).serial).toBe(ec.serial);
  });

  test('curl verifies either certificate against the CA and its request is proxied', async () => {
    for (const [cipher, want] of [['ECDHE-RSA-AES128-GCM-SHA256', 'CN=dual.test rsa'], ['ECDHE-ECDSA-AES128-GCM-SHA256', 'CN=dual.test ec']] as const) {
      const r = await exec('curl', [
        '-sS', '-v', '--max-time', '10', '--cacert', pki.caFile, '--resolve', `dual.test:${port}:127.0.0.1`,
        '--tlsv1.2', '--tls-max', '1.2', '--ciphers', cipher, `https://dual.test:${port}/kt`,
      ]);
      expect(r.code, `${cipher}: ${r.stderr}`).toBe(0);
      // curl -v prints the verified server certificate's subject.
      expect(r.stderr).toMatch(new RegExp(`subject: ${want}$`, 'm'));
      expect(JSON.parse(r.stdout).server).toBe('dual');
    }
    expect(up.seen.filter((s) => s.url === '/kt').length).toBe(2);
  });
});
