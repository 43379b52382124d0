// The SNI-vs-Host client-certificate rule on a long-lived HTTP/3 connection: H3Session.tlsFor caches its
// answer per authority, and that cache must not outlive the certificate store it was computed from. A real
// QUIC client cannot be paused between two requests of one connection while the config changes (gtlsclient
// sends its URLs at once), so the session is driven directly with the listener's real inputs: the TlsInfo of
// a handshake and the certificate store that the Admin API rebuilds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QUICConnection } from '@matrixai/quic';
import { H3Session } from '../../protocols/http3/session.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import type { TlsInfo } from '../../src/pipeline/downstream.ts';
import { CertificateStore } from '../../src/tls/store.ts';
import { makeCert, type TestCert } from './h3-helpers.ts';

let front: TestCert;
let guarded: TestCert;

beforeAll(async () => {
  [front, guarded] = await Promise.all([makeCert('front.test'), makeCert('m.test')]);
}, 20_000);

afterAll(async () => {
  await Promise.all([front, guarded].map((c) => c?.cleanup()));
});

const TLS: TlsInfo = {
  servername: 'front.test',
  protocol: 'TLSv1.3',
  cipher: '',
  clientVerify: 'NONE',
  clientSubject: '',
  clientIssuer: '',
  clientSerial: '',
  sslId: 'front',
  skipMtls: null,
  mtlsRequired: false,
};

describe('HTTP/3 SNI-vs-Host rule on a long-lived connection', () => {
  it('an ssl object given client.ca after the connection cached its Host is enforced on that connection', () => {
    const frontSsl = { id: 'front', modifiedIndex: 1, value: { cert: front.cert, key: front.key, snis: ['front.test'] } };
    let store = new CertificateStore([frontSsl, { id: 'm', modifiedIndex: 1, value: { cert: guarded.cert, key: guarded.key, snis: ['m.test'] } }], null, silentLogger);
    const conn = { remoteHost: '127.0.0.1', remotePort: 40000 } as unknown as QUICConnection;
    const session = new H3Session(conn, {
      qpack: { maxTableCapacity: 0, maxBlockedStreams: 0, maxFieldSectionSize: 16384, maxFields: 100 },
      serverAddr: '127.0.0.1',
      serverPort: 443,
      tls: TLS,
      certificates: () => store,
      handle: () => undefined,
      logger: silentLogger,
    });
    // No client.ca on m.test yet: SNI front.test may carry Host m.test.
    expect(session.tlsFor('m.test').clientVerify).toBe('NONE');
    expect(session.tlsFor('m.test')).toBe(TLS);
    // The Admin API gives m.test's ssl object a client CA: the next snapshot has a new store.
    const withCa = { id: 'm', modifiedIndex: 2, value: { cert: guarded.cert, key: guarded.key, snis: ['m.test'], client: { ca: front.cert } } };
    store = new CertificateStore([frontSsl, withCa], store, silentLogger);
    const after = session.tlsFor('m.test');
    expect(after.clientVerify).toBe('FAILED:SNI does not match Host');
    expect(after.mtlsRequired).toBe(true);
    expect(after.skipMtls).toBeNull();
    // Same Host with a port or a trailing dot selects the same ssl object; the SNI's own Host is untouched.
    expect(session.tlsFor('M.test.:443').clientVerify).toBe('FAILED:SNI does not match Host');
    expect(session.tlsFor('front.test:443')).toBe(TLS);
  });
});
