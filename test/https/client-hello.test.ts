// The HTTPS listener reads the ClientHello before the TLS handshake starts (it picks the ssl object by its SNI):
// a ClientHello that arrives in pieces (split TCP segments, here by a relay holding back all but its first bytes)
// still selects the SNI's certificate, and a request goes through on that connection; a client that stalls inside
// its ClientHello is dropped after client_header_timeout (the handshake bound).
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { exec, makePki, servedCert, type Pem, type Pki } from './pki.ts';

let tmp: { dir: string; cleanup(): Promise<void> };
let pki: Pki;
let certS: Pem;
let certO: Pem;
let up: EchoServer;
let gw: TestGateway;
let relay: net.Server;
let relayPort = 0;
/** Sizes of the pieces the relay wrote for each client's first chunk. */
const pieces: number[][] = [];

beforeAll(async () => {
  tmp = await tempDir('swy-hello-');
  pki = makePki(tmp.dir);
  certS = pki.server('s', 's.test', ['s.test'], '1A01');
  certO = pki.server('o', 'o.test', ['o.test'], '1A02');
  up = await startEcho('split');
  gw = await startTestGateway({ config: { switchyard: { limits: { client_header_timeout: 1 } } } });
  await gw.put('/ssls/s', { cert: certS.cert, key: certS.key, snis: ['s.test'] });
  await gw.put('/ssls/o', { cert: certO.cert, key: certO.key, snis: ['o.test'] });
  await gw.put('/routes/s', { uri: '/*', upstream: { nodes: { [up.addr]: 1 } } });
  // The first chunk goes out as 1 byte, then 5 bytes (a record header split), then the rest, 30 ms apart.
  relay = net.createServer((down) => {
    const upSock = net.connect(gw.httpsPort, '127.0.0.1');
    upSock.setNoDelay(true);
    down.once('data', (chunk: Buffer) => {
      down.pause();
      const cuts = [1, 6, chunk.length];
      const sizes: number[] = [];
      pieces.push(sizes);
      let from = 0;
      const next = (i: number): void => {
        if (i === cuts.length) {
          down.pipe(upSock);
          down.resume();
          return;
        }
        const part = chunk.subarray(from, cuts[i]);
        from = cuts[i]!;
        sizes.push(part.length);
        upSock.write(part);
        setTimeout(next, 30, i + 1);
      };
      next(0);
    });
    upSock.pipe(down);
    const drop = (): void => {
      down.destroy();
      upSock.destroy();
    };
    down.on('error', drop).on('close', drop);
    upSock.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  relayPort = (relay.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => relay?.close(() => resolve()));
  await Promise.all([gw?.close(), up?.close()]);
  await tmp?.cleanup();
});

describe('a ClientHello in pieces', () => {
  test('each SNI still gets its certificate', async () => {
    for (const [sni, want] of [['s.test', certS], ['o.test', certO]] as const) {
      const r = await servedCert(relayPort, sni);
      expect(r.ok, r.output).toBe(true);
      expect(r.serial).toBe(want.serial);
    }
    // The relay did split the ClientHello: three writes per connection.
    expect(pieces.length).toBeGreaterThanOrEqual(2);
    for (const p of pieces) expect(p.length).toBe(3);
  });

  test('curl through the splitting relay is proxied', async () => {
    const r = await exec('curl', ['-sS', '--max-time', '10', '--cacert', pki.caFile, '--resolve', `s.test:${relayPort}:127.0.0.1`, `https://s.test:${relayPort}/split`]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).server).toBe('split');
  });

  test('a ClientHello that never completes is dropped after client_header_timeout', async () => {
    const sock = net.connect(gw.httpsPort, '127.0.0.1');
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    const started = performance.now();
    // A handshake record header announcing 512 bytes, and nothing after it.
    sock.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]));
    const closed = await new Promise<number>((resolve) => {
      sock.on('error', () => undefined);
      sock.once('close', () => resolve(performance.now() - started));
      sock.resume();
    });
    // The bound is 1 s; the upper limit only says "not the 60 s default", loose for a loaded machine.
    expect(closed).toBeGreaterThanOrEqual(900);
    expect(closed).toBeLessThan(20_000);
  });
});

describe('a server name that is not a host name', () => {
  test('fails the handshake instead of getting fallback_sni\'s certificate', async () => {
    const port = await freePort();
    const fb = await startTestGateway({ config: { apisix: { ssl: { listen: [{ ip: '127.0.0.1', port }], fallback_sni: 's.test' } } } });
    try {
      await fb.put('/ssls/s', { cert: certS.cert, key: certS.key, snis: ['s.test'] });
      const handshake = (servername: string | undefined) =>
        new Promise<string>((resolve) => {
          const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(servername === undefined ? {} : { servername }) }, () => {
            resolve(`ok ${s.getPeerCertificate().serialNumber}`);
            s.destroy();
          });
          s.on('error', (err) => resolve(`error ${err.message}`));
        });
      // Without SNI (node sends none for an address): the fallback certificate.
      expect(await handshake(undefined)).toBe(`ok ${certS.serial}`);
      expect(await handshake('s.test')).toBe(`ok ${certS.serial}`);
      expect(await handshake('bad*name.test')).toMatch(/^error /);
    } finally {
      await fb.close();
    }
  });
});
