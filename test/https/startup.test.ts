// ssl objects present when the gateway starts (standalone apisix.yaml here; etcd alike) must be served from the
// first handshake, not only after some later config change.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { tempDir } from '../helpers/proc.ts';
import { makePki, servedCert, type Pem } from './pki.ts';

let tmp: { dir: string; cleanup(): Promise<void> };
let cert: Pem;
let gw: TestGateway;

beforeAll(async () => {
  tmp = await tempDir('swy-https-start-');
  cert = makePki(tmp.dir).server('boot', 'boot.test', ['boot.test'], '0B07');
  gw = await startTestGateway({ standalone: { ssls: [{ id: 'boot', cert: cert.cert, key: cert.key, snis: ['boot.test'] }] } });
  await gw.synced();
});

afterAll(async () => {
  await gw?.close();
  await tmp?.cleanup();
});

describe('certificates loaded at startup', () => {
  // Regression: the TLS RuntimeBuilder was added after manager.start(), so the first build skipped it and
  // SSL objects present at start-up were not served until the next config change.
  test('an ssl object from apisix.yaml serves the first handshake', async () => {
    const r = await servedCert(gw.httpsPort, 'boot.test');
    expect(r.ok, r.output).toBe(true);
    expect(r.serial).toBe(cert.serial);
  });
});
