// Client certificates per ssl object (client.ca, client.skip_mtls_uri_regex) with curl as the client: no
// certificate or one from another CA gets 400, one signed by the configured CA passes, matching paths skip the
// check, and the ssl_client_* variables reach plugins (proxy-rewrite headers) and route `vars`. A returning
// client that resumes its session (node's TLS client and openssl s_client, TLS 1.2 and 1.3) is still verified.
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { clientCerts, exec, makePki, type Pem, type Pki } from './pki.ts';

let tmp: { dir: string; cleanup(): Promise<void> };
let pki: Pki;
let client: Pem;
let foreign: Pem;
/** Client certificates one and two intermediate CAs below the client CA. */
let viaOne: Pem;
let viaTwo: Pem;
let up: EchoServer;
let verified: EchoServer;
let gw: TestGateway;
/** fallback_sni points at the mTLS ssl object: clients without SNI must not bypass it. */
let fb: TestGateway;
let fbPort = 0;

beforeAll(async () => {
  tmp = await tempDir('swy-mtls-');
  pki = makePki(tmp.dir);
  const m = pki.server('m', 'm.test', ['m.test', 'strict.test'], '0C01');
  const open = pki.server('open', 'open.test', ['open.test'], '0C02');
  ({ client, foreign, viaOne, viaTwo } = clientCerts(pki));
  const d = pki.server('d', 'd0.test', ['d0.test', 'd1.test', 'd2.test'], '0C03');
  [up, verified] = await Promise.all([startEcho('M'), startEcho('V')]);
  fbPort = await freePort();
  [gw, fb] = await Promise.all([
    startTestGateway(),
    startTestGateway({ config: { apisix: { ssl: { listen: [{ ip: '127.0.0.1', port: fbPort }], fallback_sni: 'm.test' } } } }),
  ]);
  const headers = {
    set: { 'x-client-verify': '$ssl_client_verify', 'x-client-dn': '$ssl_client_s_dn', 'x-client-serial': '$ssl_client_serial', 'x-sni': '$ssl_server_name' },
  };
  for (const g of [gw, fb]) {
    await g.put('/ssls/m', { cert: m.cert, key: m.key, snis: ['m.test'], client: { ca: pki.clientCa, skip_mtls_uri_regex: ['^/public/'] } });
    await g.put('/ssls/open', { cert: open.cert, key: open.key, snis: ['open.test'] });
    await g.put('/ssls/strict', { cert: m.cert, key: m.key, snis: ['strict.test'], client: { ca: pki.clientCa, depth: 1 } });
    for (const depth of [0, 1, 2]) {
      await g.put(`/ssls/d${depth}`, { cert: d.cert, key: d.key, snis: [`d${depth}.test`], client: { ca: pki.clientCa, depth } });
    }
    await g.put('/routes/m', { uri: '/*', hosts: ['m.test', 'strict.test', 'd0.test', 'd1.test', 'd2.test'], plugins: { 'proxy-rewrite': { headers } }, upstream: { nodes: { [up.addr]: 1 } } });
    await g.put('/routes/verified', {
      uri: '/verified/*',
      hosts: ['m.test'],
      vars: [['ssl_client_verify', '==', 'SUCCESS']],
      upstream: { nodes: { [verified.addr]: 1 } },
    });
  }
});

afterAll(async () => {
  await Promise.all([gw?.close(), fb?.close(), up?.close(), verified?.close()]);
  await tmp?.cleanup();
});

interface Answer {
  status: number;
  body: string;
  stderr: string;
}

async function request(name: string, port: number, p: string, cert: Pem | null, extra: string[] = []): Promise<Answer> {
  const args = ['-sS', '--max-time', '10', '--cacert', pki.caFile, '--resolve', `${name}:${port}:127.0.0.1`, '-w', '\n%{http_code}', ...extra];
  if (cert !== null) args.push('--cert', cert.certFile, '--key', cert.keyFile);
  const r = await exec('curl', [...args, `https://${name}:${port}${p}`]);
  const nl = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(nl + 1)), body: r.stdout.slice(0, nl), stderr: r.stderr };
}

interface Resumed {
  status: number;
  /** ssl_client_verify and ssl_client_serial as the upstream saw them (proxy-rewrite headers). */
  verify: string;
  serial: string;
  reused: boolean;
  error: string;
}

/**
 * The echo's JSON answer, read out of a raw HTTP/1.1 exchange, or out of s_client's output: there the status line
 * can land in the middle of a session printout line (TLS 1.3 tickets arrive after the handshake), so nothing is anchored.
 */
function echoed(raw: string): Pick<Resumed, 'status' | 'verify' | 'serial'> {
  return {
    status: Number(/HTTP\/1\.1 (\d{3}) /.exec(raw)?.[1] ?? 0),
    verify: /"x-client-verify":"([^"]*)"/.exec(raw)?.[1] ?? '',
    serial: /"x-client-serial":"([^"]*)"/.exec(raw)?.[1] ?? '',
  };
}

const GET_M = 'GET /resume HTTP/1.1\r\nHost: m.test\r\nConnection: close\r\n\r\n';

/** Node's TLS client on m.test offering `session`; `onSession` gets each session the server hands out. */
function nodeResume(version: tls.SecureVersion, session: Buffer | undefined, onSession: (s: Buffer) => void): Promise<Resumed> {
  return new Promise((resolve) => {
    let raw = '';
    let error = '';
    // Read once connected: node answers null after the close.
    let reused = false;
    const s = tls.connect(
      { host: '127.0.0.1', port: gw.httpsPort, servername: 'm.test', ca: pki.ca, cert: client.cert, key: client.key, session, minVersion: version, maxVersion: version },
      () => {
        reused = s.isSessionReused();
        s.write(GET_M);
      },
    );
    s.on('session', onSession);
    s.on('data', (d: Buffer) => (raw += d.toString()));
    s.on('error', (err) => (error = err.message));
    s.setTimeout(10_000, () => s.destroy(new Error('timed out')));
    s.on('close', () => resolve({ ...echoed(raw), reused, error }));
  });
}

/**
 * openssl s_client on m.test: saves the session it gets to `sessFile` (-sess_out) or offers the saved one
 * (-sess_in). -ign_eof keeps it reading until the gateway closes (Connection: close), so TLS 1.3 tickets arrive.
 */
async function opensslResume(flag: '-tls1_2' | '-tls1_3', sessFile: string, resume: boolean): Promise<Resumed> {
  const r = await exec(
    'openssl',
    [
      's_client', '-connect', `127.0.0.1:${gw.httpsPort}`, '-servername', 'm.test', '-CAfile', pki.caFile, '-verify_return_error',
      '-cert', client.certFile, '-key', client.keyFile, '-ign_eof', flag, resume ? '-sess_in' : '-sess_out', sessFile,
    ],
    GET_M,
  );
  // s_client's summary line: "New, TLSv1.3, Cipher is ..." or "Reused, TLSv1.3, Cipher is ...".
  return { ...echoed(r.stdout), reused: /Reused, TLSv1\.[23],/.test(r.stdout), error: r.code === 0 ? '' : r.stderr };
}

describe('mTLS per ssl object', () => {
  test('no client certificate: 400, and the upstream sees nothing', async () => {
    const before = up.seen.length;
    for (const name of ['m.test', 'strict.test']) {
      const r = await request(name, gw.httpsPort, '/private', null);
      expect(r.status, r.stderr).toBe(400);
    }
    expect(up.seen.length).toBe(before);
  });

  test('a certificate signed by another CA: 400', async () => {
    const r = await request('m.test', gw.httpsPort, '/private', foreign);
    expect(r.status, r.stderr).toBe(400);
  });

  test('a certificate signed by client.ca passes; ssl_client_* variables reach plugins', async () => {
    for (const name of ['m.test', 'strict.test']) {
      const r = await request(name, gw.httpsPort, '/private', client);
      expect(r.status, r.stderr).toBe(200);
      const seen = JSON.parse(r.body);
      expect(seen.server).toBe('M');
      expect(seen.headers['x-client-verify']).toBe('SUCCESS');
      expect(seen.headers['x-client-dn']).toBe('CN=client-one');
      expect(seen.headers['x-client-serial']).toBe(client.serial);
      expect(seen.headers['x-sni']).toBe(name);
    }
    // Over h2 too.
    const h2 = await request('m.test', gw.httpsPort, '/private-h2', client, ['--http2']);
    expect(h2.status, h2.stderr).toBe(200);
    expect(JSON.parse(h2.body).headers['x-client-verify']).toBe('SUCCESS');
  });

  test('client.depth bounds the intermediate CAs between the client certificate and client.ca (nginx ssl_verify_depth)', async () => {
    const before = up.seen.length;
    const cases: [string, Pem, number][] = [
      ['d0.test', viaOne, 400],
      ['d1.test', viaOne, 200],
      ['d2.test', viaOne, 200],
      ['d1.test', viaTwo, 400],
      ['d2.test', viaTwo, 200],
      // No intermediate: within every depth.
      ['d0.test', client, 200],
    ];
    let passed = 0;
    for (const [name, cert, status] of cases) {
      const r = await request(name, gw.httpsPort, '/depth', cert);
      expect(r.status, `${name} ${cert.serial}: ${r.stderr}`).toBe(status);
      if (status !== 200) continue;
      passed++;
      const seen = JSON.parse(r.body);
      expect(seen.headers['x-client-verify']).toBe('SUCCESS');
      expect(seen.headers['x-client-serial']).toBe(cert.serial);
    }
    // The rejected ones never reached the upstream.
    expect(up.seen.length - before).toBe(passed);
  });

  test('skip_mtls_uri_regex lets matching paths through without a certificate (ssl_client_verify NONE)', async () => {
    const r = await request('m.test', gw.httpsPort, '/public/info', null);
    expect(r.status, r.stderr).toBe(200);
    expect(JSON.parse(r.body).headers['x-client-verify']).toBe('NONE');
    // Not a prefix match of the regex: still rejected.
    expect((await request('m.test', gw.httpsPort, '/x/public/info', null)).status).toBe(400);
  });

  test('route vars see ssl_client_verify', async () => {
    const r = await request('m.test', gw.httpsPort, '/verified/a', client);
    expect(r.status, r.stderr).toBe(200);
    expect(JSON.parse(r.body).server).toBe('V');
  });

  test('an SNI without mTLS cannot front for a Host whose ssl object requires it (APISIX: SNI must equal Host)', async () => {
    const before = up.seen.length;
    for (const cert of [null, client]) {
      for (const p of ['/private', '/public/info']) {
        // Host forms the router normalizes to m.test (case, trailing dots, port) select m.test's ssl object too.
        for (const host of ['m.test', 'M.Test', 'm.test.', 'm.test..', 'm.test.:443']) {
          const r = await request('open.test', gw.httpsPort, p, cert, ['-H', `Host: ${host}`]);
          expect(r.status, `${p} Host ${host} ${cert === null ? 'without' : 'with'} certificate: ${r.stderr}`).toBe(400);
        }
      }
    }
    expect(up.seen.length).toBe(before);
    // An absolute-form target names the authority that is routed (RFC 9112 3.2.2): it is held to the rule too.
    for (const target of ['https://m.test/private', 'https://M.test.:443/private?x=1']) {
      const r = await request('open.test', gw.httpsPort, '/private', null, ['--http1.1', '--request-target', target]);
      expect(r.status, `${target}: ${r.stderr}`).toBe(400);
    }
    expect(up.seen.length).toBe(before);
    // The same connection kind with a Host whose ssl object has no client.ca is served.
    await gw.put('/routes/open', { uri: '/*', hosts: ['open.test'], upstream: { nodes: { [up.addr]: 1 } } });
    expect((await request('open.test', gw.httpsPort, '/private', null)).status).toBe(200);
  });

  test('a client without SNI on the fallback_sni ssl object is held to its mTLS policy', async () => {
    const ip = (cert: Pem | null) => {
      const args = ['-sS', '-k', '--max-time', '10', '-H', 'Host: m.test', '-w', '\n%{http_code}'];
      if (cert !== null) args.push('--cert', cert.certFile, '--key', cert.keyFile);
      return exec('curl', [...args, `https://127.0.0.1:${fbPort}/private`]);
    };
    const without = await ip(null);
    expect(without.stdout.slice(without.stdout.lastIndexOf('\n') + 1), without.stderr).toBe('400');
    const withCert = await ip(client);
    const nl = withCert.stdout.lastIndexOf('\n');
    expect(withCert.stdout.slice(nl + 1), withCert.stderr).toBe('200');
    expect(JSON.parse(withCert.stdout.slice(0, nl)).headers['x-client-verify']).toBe('SUCCESS');
    // client.depth holds there too (m's default depth 1): one intermediate passes, two do not.
    expect((await ip(viaOne)).stdout.endsWith('\n200'), 'one intermediate').toBe(true);
    expect((await ip(viaTwo)).stdout.endsWith('\n400'), 'two intermediates').toBe(true);
  });

  test('a client resuming its session (TLS 1.2 session id or ticket, TLS 1.3 ticket) is answered and still verified', async () => {
    const answered = { status: 200, verify: 'SUCCESS', serial: client.serial, error: '' };
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      let session: Buffer | undefined;
      for (const round of [1, 2]) {
        const r = await nodeResume(version, session, (t) => (session = t));
        expect(r, `node ${version} round ${round}`).toEqual({ ...answered, reused: round === 2 });
      }
    }
    for (const flag of ['-tls1_2', '-tls1_3'] as const) {
      const sessFile = path.join(tmp.dir, `resume${flag}.sess`);
      expect(await opensslResume(flag, sessFile, false), `openssl ${flag} first`).toEqual({ ...answered, reused: false });
      expect(await opensslResume(flag, sessFile, true), `openssl ${flag} resumed`).toEqual({ ...answered, reused: true });
    }
  });
});
