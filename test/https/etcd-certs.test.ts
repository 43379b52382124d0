// A certificate change that arrives through etcd, written there by another writer than this gateway's Admin API
// (etcdctl, with the private key encrypted as APISIX stores it: AES-128-CBC under the first data_encryption
// keyring entry, made with the openssl CLI): the next handshake on the gateway serves the new certificate, and a
// keep-alive connection opened before the change keeps working with the old one.
import { execFileSync } from 'node:child_process';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { APISIX_DEFAULT_KEYRING } from '../../src/config/encryption.ts';
import { startEtcd, type EtcdPeer } from '../helpers/etcd.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { makePki, servedCert, type Pem, type Pki } from './pki.ts';

let tmp: { dir: string; cleanup(): Promise<void> };
let pki: Pki;
let first: Pem;
let second: Pem;
let etcd: EtcdPeer;
let up: EchoServer;
let gw: TestGateway;
let prefix = '';

beforeAll(async () => {
  tmp = await tempDir('swy-etcd-certs-');
  pki = makePki(tmp.dir);
  first = pki.server('e1', 'e.test first', ['e.test'], '0F01');
  second = pki.server('e2', 'e.test second', ['e.test'], '0F02');
  [etcd, up] = await Promise.all([startEtcd(), startEcho('etcd-tls')]);
  gw = await startTestGateway({ etcd: { endpoint: etcd.endpoint } });
  prefix = gw.config.deployment.etcd!.prefix as string;
  await gw.put('/ssls/e', { cert: first.cert, key: first.key, snis: ['e.test'] });
  await gw.put('/routes/e', { uri: '/*', hosts: ['e.test'], upstream: { nodes: { [up.addr]: 1 } } });
});

afterAll(async () => {
  await gw?.close();
  await Promise.all([up?.close(), etcd?.stop()]);
  await tmp?.cleanup();
});

/** APISIX's stored form of an ssl key: AES-128-CBC, key and IV both the keyring entry, base64. */
function encryptKey(pem: string): string {
  const k = Buffer.from(APISIX_DEFAULT_KEYRING[0]!, 'utf8').toString('hex');
  return execFileSync('openssl', ['enc', '-aes-128-cbc', '-K', k, '-iv', k, '-base64', '-A'], { input: pem }).toString().trim();
}

describe('certificates changed in etcd', () => {
  test('the next handshake serves the new certificate; an open keep-alive connection keeps working', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pki.ca });
    const get = (p: string) =>
      new Promise<{ status: number; body: string; socket: TLSSocket; reused: boolean }>((resolve, reject) => {
        const req = https.get({ host: '127.0.0.1', port: gw.httpsPort, path: p, servername: 'e.test', headers: { host: 'e.test' }, agent }, (res) => {
          // Taken now: a keep-alive socket goes back to the agent when the response ends.
          const socket = res.socket as TLSSocket;
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, socket, reused: req.reusedSocket }));
        });
        req.on('error', reject);
      });
    try {
      const before = await get('/before');
      expect(before.status).toBe(200);
      expect(before.socket.getPeerCertificate().serialNumber).toBe(first.serial);

      // What the Admin API stored: the key is not in etcd in clear.
      const stored = JSON.parse(await etcd.etcdctl('get', `${prefix}/ssls/e`, '--print-value-only')) as Record<string, unknown>;
      expect(stored.key).not.toContain('PRIVATE KEY');
      const since = gw.gw.store!.get('ssls', 'e')!.modifiedIndex;
      const value = { ...stored, cert: second.cert, key: encryptKey(second.key), update_time: Math.floor(Date.now() / 1000) };
      await etcd.etcdctl('put', `${prefix}/ssls/e`, JSON.stringify(value));
      // The watch delivers the write; the certificate store is rebuilt with the snapshot.
      await waitFor(() => gw.gw.store!.get('ssls', 'e')!.modifiedIndex > since, 10_000, 20);
      await gw.synced();

      const fresh = await servedCert(gw.httpsPort, 'e.test');
      expect(fresh.ok, fresh.output).toBe(true);
      expect(fresh.serial).toBe(second.serial);
      expect(fresh.subject).toBe('CN=e.test second');

      const after = await get('/after');
      expect(after.status).toBe(200);
      expect(after.reused).toBe(true);
      expect(after.socket).toBe(before.socket);
      expect(after.socket.getPeerCertificate().serialNumber).toBe(first.serial);
      expect(JSON.parse(after.body).url).toBe('/after');
    } finally {
      agent.destroy();
    }
  });
});
