// TLS stream listeners take their ssl objects from the gateway's one certificate store, built with config.yaml's
// apisix.ssl defaults as for HTTPS: an ssl object without ssl_protocols of its own gets the listener-wide
// apisix.ssl.ssl_protocols on the stream port too (the stream runtime used to build a store of its own without
// them, so a TLSv1.3-only gateway still let TLSv1.2 clients in on its stream ports). openssl s_client is the client.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir } from '../helpers/proc.ts';
import { makePki, servedCert, type Pem } from '../https/pki.ts';

let tmp: { dir: string; cleanup(): Promise<void> };
let plain: Pem;
let upstream: net.Server;
let gw: TestGateway;
let port = 0;

beforeAll(async () => {
  tmp = await tempDir('swy-stream-tls-defaults-');
  const pki = makePki(tmp.dir);
  plain = pki.server('plain', 'plain.test', ['plain.test'], '5D01');
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
        ssl: { listen: [{ ip: '127.0.0.1', port: httpsPort }], ssl_protocols: 'TLSv1.3' },
        stream_proxy: { tcp: [{ addr: `127.0.0.1:${port}`, tls: true }] },
      },
    },
  });
  await gw.put('/ssls/plain', { cert: plain.cert, key: plain.key, snis: ['plain.test'] });
  await gw.put('/stream_routes/s', { server_port: port, upstream: { nodes: { [`127.0.0.1:${(upstream.address() as net.AddressInfo).port}`]: 1 } } });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await new Promise((resolve) => upstream?.close(resolve));
  await tmp?.cleanup();
});

describe('TLS stream listener: apisix.ssl defaults', () => {
  test('apisix.ssl.ssl_protocols TLSv1.3 applies to an ssl object without its own: TLSv1.2 refused, TLSv1.3 served', async () => {
    const refused = await servedCert(port, 'plain.test', ['-tls1_2']);
    expect(refused.ok, refused.output).toBe(false);
    const ok = await servedCert(port, 'plain.test', ['-tls1_3']);
    expect(ok.ok, ok.output).toBe(true);
    expect(ok.serial).toBe(plain.serial);
    expect(ok.protocol).toBe('TLSv1.3');
  });
});
