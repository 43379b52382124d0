// The TLS stream listener (stream_proxy.tcp with `tls: true`) picks the ssl object from the ClientHello's SNI and
// starts the handshake from that object's own context, as HTTPS does: an object holding an RSA and an ECDSA
// certificate serves each to a client restricted to it, and an object's ssl_protocols is enforced. openssl s_client
// (an independent TLS stack) restricts what it accepts and reads the served certificate; node's TLS client then
// sends bytes through the gateway to a TCP upstream that answers with its name, proving the session is proxied.
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir } from '../helpers/proc.ts';
import { EC, makePki, ONLY_EC_12, ONLY_EC_13, ONLY_RSA_12, ONLY_RSA_13, RSA, servedCert, type Pem, type Pki } from '../https/pki.ts';

let tmp: { dir: string; cleanup(): Promise<void> };
let pki: Pki;
let rsa: Pem;
let ec: Pem;
let v13: Pem;
let v12: Pem;
let upstream: net.Server;
let gw: TestGateway;
let port = 0;


beforeAll(async () => {
  tmp = await tempDir('swy-stream-keytypes-');
  pki = makePki(tmp.dir);
  rsa = pki.serverRsa('rsa', 'dual.test rsa', ['dual.test'], '5C01');
  ec = pki.server('ec', 'dual.test ec', ['dual.test'], '5C02');
  v13 = pki.server('v13', 'v13.test', ['v13.test'], '5E13');
  v12 = pki.server('v12', 'v12.test', ['v12.test'], '5E12');
  // Answers every chunk with "up:" + the chunk: what a client reads came from here, through the gateway.
  upstream = net.createServer((s) => {
    s.on('data', (d: Buffer) => s.write(`up:${d.toString()}`));
    s.on('error', () => s.destroy());
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  port = await freePort();
  const httpsPort = await freePort();
  gw = await startTestGateway({
    config: {
      apisix: {
        proxy_mode: 'http&stream',
        ssl: { listen: [{ ip: '127.0.0.1', port: httpsPort }], fallback_sni: 'dual.test' },
        stream_proxy: { tcp: [{ addr: `127.0.0.1:${port}`, tls: true }] },
      },
    },
  });
  await gw.put('/ssls/dual', { cert: rsa.cert, key: rsa.key, certs: [ec.cert], keys: [ec.key], snis: ['dual.test'] });
  await gw.put('/ssls/v13', { cert: v13.cert, key: v13.key, snis: ['v13.test'], ssl_protocols: ['TLSv1.3'] });
  await gw.put('/ssls/v12', { cert: v12.cert, key: v12.key, snis: ['v12.test'], ssl_protocols: ['TLSv1.2'] });
  await gw.put('/stream_routes/s', { server_port: port, upstream: { nodes: { [`127.0.0.1:${(upstream.address() as net.AddressInfo).port}`]: 1 } } });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await new Promise((resolve) => upstream?.close(resolve));
  await tmp?.cleanup();
});

/** Connects with node's TLS client (verifying against the test CA), sends `msg` and reads the upstream's answer. */
function roundTrip(servername: string | undefined, opts: tls.ConnectionOptions, msg: string): Promise<{ serial: string; keyType: string; protocol: string; answer: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca: pki.ca, ...opts }, () => {
      const cert = s.getPeerX509Certificate()!;
      const protocol = s.getProtocol() ?? '';
      s.write(msg);
      let answer = '';
      const want = `up:${msg}`;
      s.on('data', (d: Buffer) => {
        answer += d.toString();
        if (answer.length >= want.length) {
          s.destroy();
          resolve({ serial: cert.serialNumber.toUpperCase(), keyType: cert.publicKey.asymmetricKeyType ?? '', protocol, answer });
        }
      });
    });
    s.setTimeout(10_000, () => s.destroy(new Error('timed out')));
    s.on('error', reject);
  });
}

describe('TLS stream listener: certificates per key type', () => {
  test('an RSA+ECDSA object serves each key type to a client restricted to it (TLS 1.3 by sigalgs, TLS 1.2 by cipher)', async () => {
    for (const [args, want, type] of [
      [ONLY_EC_13, ec, EC],
      [ONLY_RSA_13, rsa, RSA],
      [ONLY_EC_12, ec, EC],
      [ONLY_RSA_12, rsa, RSA],
    ] as const) {
      const got = await servedCert(port, 'dual.test', args);
      expect(got.ok, `${args.join(' ')}: ${got.output}`).toBe(true);
      expect(got.serial, args.join(' ')).toBe(want.serial);
      expect(got.keyType, args.join(' ')).toBe(type);
    }
  });

  test('a node client verifies either certificate and its bytes reach the upstream', async () => {
    const viaEc = await roundTrip('dual.test', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }, 'ec');
    expect(viaEc).toEqual({ serial: ec.serial, keyType: 'ec', protocol: 'TLSv1.2', answer: 'up:ec' });
    const viaRsa = await roundTrip('dual.test', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }, 'rsa');
    expect(viaRsa).toEqual({ serial: rsa.serial, keyType: 'rsa', protocol: 'TLSv1.2', answer: 'up:rsa' });
  });
});

describe('TLS stream listener: ssl_protocols per object', () => {
  test('an object limited to TLSv1.3 refuses a TLSv1.2-only client and accepts TLSv1.3', async () => {
    const refused = await servedCert(port, 'v13.test', ['-tls1_2']);
    expect(refused.ok, refused.output).toBe(false);
    const ok = await servedCert(port, 'v13.test', ['-tls1_3']);
    expect(ok.ok, ok.output).toBe(true);
    expect(ok.serial).toBe(v13.serial);
    expect(ok.protocol).toBe('TLSv1.3');
  });

  test('an object limited to TLSv1.2 negotiates TLSv1.2 with a client offering both, and proxies', async () => {
    const got = await servedCert(port, 'v12.test');
    expect(got.ok, got.output).toBe(true);
    expect(got.protocol).toBe('TLSv1.2');
    const r = await roundTrip('v12.test', {}, 'v12');
    expect(r).toEqual({ serial: v12.serial, keyType: 'ec', protocol: 'TLSv1.2', answer: 'up:v12' });
  });

});

describe('TLS stream listener: fallback_sni and unknown names', () => {
  test('a client without SNI gets fallback_sni\'s object, each key type chosen the same way, and is proxied', async () => {
    expect((await servedCert(port, null, ONLY_RSA_13)).serial).toBe(rsa.serial);
    expect((await servedCert(port, null, ONLY_EC_13)).serial).toBe(ec.serial);
    // No servername to an IP address: node sends no SNI; the certificate names dual.test, not 127.0.0.1.
    const r = await roundTrip(undefined, { checkServerIdentity: () => undefined, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }, 'nosni');
    expect(r).toEqual({ serial: rsa.serial, keyType: 'rsa', protocol: 'TLSv1.2', answer: 'up:nosni' });
  });

  test('an SNI without a certificate, or a server name that is not a host name, fails the handshake', async () => {
    expect((await servedCert(port, 'nobody.test')).ok).toBe(false);
    await expect(roundTrip('bad*name.test', { checkServerIdentity: () => undefined }, 'x')).rejects.toThrow();
  });
});
