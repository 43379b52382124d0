// Client certificates (an ssl object's client.ca, client.depth, client.skip_mtls_uri_regex) over HTTP/3, held to
// the HTTPS behaviour of the same ssl object on the same gateway: gtlsclient (ngtcp2, GnuTLS, --key/--cert) is the
// HTTP/3 client, curl the HTTPS one, and the certificates come from the openssl CLI (test/https/pki.ts). The one
// documented difference (protocols/http3/listener.ts quicTlsInfo): a certificate that fails verification fails the
// QUIC handshake, where HTTPS answers 400. gtlsclient sends its <HOST> argument as SNI, so the names are those of
// /etc/hosts: `runsc` has client.ca, `vm` has none.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { clientCerts, exec, makePki, type Pem, type Pki } from '../https/pki.ts';
import { gtls, makeCert, startH3Gateway, type GtlsResult, type H3Gateway, type TestCert } from './h3-helpers.ts';

let tmp: { dir: string; cleanup(): Promise<void> };
let pki: Pki;
let client: Pem;
let foreign: Pem;
/** Client certificates one and two intermediate CAs below the client CA (client.depth defaults to 1). */
let viaOne: Pem;
let viaTwo: Pem;
let local: TestCert;
let up: EchoServer;
let gw: H3Gateway;

beforeAll(async () => {
  tmp = await tempDir('swy-h3-mtls-');
  pki = makePki(tmp.dir);
  const secure = pki.server('secure', 'runsc', ['runsc'], '0C11');
  const open = pki.server('open', 'vm', ['vm'], '0C12');
  ({ client, foreign, viaOne, viaTwo } = clientCerts(pki));
  [local, up] = await Promise.all([makeCert('localhost'), startEcho('U')]);
  gw = await startH3Gateway(local);
  await gw.t.put('/ssls/secure', { cert: secure.cert, key: secure.key, snis: ['runsc'], client: { ca: pki.clientCa, skip_mtls_uri_regex: ['^/public/'] } });
  await gw.t.put('/ssls/open', { cert: open.cert, key: open.key, snis: ['vm'] });
  const headers = {
    set: {
      'x-client-verify': '$ssl_client_verify',
      'x-client-dn': '$ssl_client_s_dn',
      'x-client-issuer': '$ssl_client_i_dn',
      'x-client-serial': '$ssl_client_serial',
      'x-sni': '$ssl_server_name',
    },
  };
  await gw.t.put('/routes/all', { uri: '/*', hosts: ['runsc', 'vm'], plugins: { 'proxy-rewrite': { headers } }, upstream: { nodes: { [up.addr]: 1 } } });
}, 60_000);

afterAll(async () => {
  await gw?.t.close();
  await Promise.all([up?.close(), local?.cleanup()]);
  await tmp?.cleanup();
});

/** One HTTP/3 request to `host` (also its SNI) with gtlsclient, presenting `cert` when given. */
function h3(host: string, p: string, cert: Pem | null): Promise<GtlsResult> {
  const extra = cert === null ? [] : [`--key=${cert.keyFile}`, `--cert=${cert.certFile}`];
  return gtls(gw.port, [`https://${host}:${gw.port}${p}`], { host, extra });
}

interface Answer {
  status: number;
  body: string;
  stderr: string;
}

/** The same request over HTTPS with curl, for the same ssl object on the same port. */
async function https(host: string, p: string, cert: Pem | null): Promise<Answer> {
  const args = ['-sS', '--max-time', '10', '--cacert', pki.caFile, '--resolve', `${host}:${gw.port}:127.0.0.1`, '-w', '\n%{http_code}'];
  if (cert !== null) args.push('--cert', cert.certFile, '--key', cert.keyFile);
  const r = await exec('curl', [...args, `https://${host}:${gw.port}${p}`]);
  const nl = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(nl + 1)), body: r.stdout.slice(0, nl), stderr: r.stderr };
}

const statuses = (r: GtlsResult): string[] => r.responses.map((h) => h[':status']!);
const log = (r: GtlsResult): string => (r.stdout + r.stderr).slice(-1500);

/** The client-certificate variables the upstream received (set by proxy-rewrite). */
function seenVars(body: string | Buffer | undefined): Record<string, unknown> {
  const h = (JSON.parse(String(body)) as { headers: Record<string, unknown> }).headers;
  return { verify: h['x-client-verify'], dn: h['x-client-dn'], issuer: h['x-client-issuer'], serial: h['x-client-serial'], sni: h['x-sni'] };
}

describe('HTTP/3 client certificates, as HTTPS for the same ssl object', () => {
  it('a certificate signed by client.ca: 200 from the upstream, with the same ssl_client_* variables as HTTPS', async () => {
    const r = await h3('runsc', '/private/a', client);
    expect(statuses(r), log(r)).toEqual(['200']);
    const quic = seenVars(r.body('a'));
    expect(quic).toEqual({ verify: 'SUCCESS', dn: 'CN=client-one', issuer: 'CN=Switchyard Test Client CA', serial: client.serial, sni: 'runsc' });
    const tcp = await https('runsc', '/private/a', client);
    expect(tcp.status, tcp.stderr).toBe(200);
    expect(seenVars(tcp.body)).toEqual(quic);
  }, 30_000);

  it('no certificate: 400 on both, and the upstream sees nothing', async () => {
    const before = up.seen.length;
    const r = await h3('runsc', '/private/b', null);
    expect(statuses(r), log(r)).toEqual(['400']);
    expect((await https('runsc', '/private/b', null)).status).toBe(400);
    expect(up.seen.length).toBe(before);
  }, 30_000);

  it('a skip_mtls_uri_regex path needs no certificate (ssl_client_verify NONE); a non-matching one still does', async () => {
    const r = await h3('runsc', '/public/info', null);
    expect(statuses(r), log(r)).toEqual(['200']);
    expect(seenVars(r.body('info'))).toMatchObject({ verify: 'NONE', dn: '', sni: 'runsc' });
    const tcp = await https('runsc', '/public/info', null);
    expect(tcp.status, tcp.stderr).toBe(200);
    expect(seenVars(tcp.body)).toEqual(seenVars(r.body('info')));
    const other = await h3('runsc', '/x/public/info', null);
    expect(statuses(other), log(other)).toEqual(['400']);
  }, 30_000);

  it('client.depth (default 1): one intermediate CA passes, two get 400 as on HTTPS', async () => {
    const one = await h3('runsc', '/depth/one', viaOne);
    expect(statuses(one), log(one)).toEqual(['200']);
    expect(seenVars(one.body('one'))).toMatchObject({ verify: 'SUCCESS', dn: 'CN=client-via-one', issuer: 'CN=Client Intermediate One', serial: viaOne.serial });
    expect((await https('runsc', '/depth/one', viaOne)).status).toBe(200);
    const before = up.seen.length;
    const two = await h3('runsc', '/depth/two', viaTwo);
    expect(statuses(two), log(two)).toEqual(['400']);
    expect((await https('runsc', '/depth/two', viaTwo)).status).toBe(400);
    expect(up.seen.length).toBe(before);
  }, 30_000);

  it('a certificate from another CA: HTTPS answers 400, QUIC fails the handshake (the binding cannot accept an unverified certificate)', async () => {
    const before = up.seen.length;
    expect((await https('runsc', '/private/c', foreign)).status).toBe(400);
    const r = await h3('runsc', '/private/c', foreign);
    expect(statuses(r), log(r)).toEqual([]);
    expect(up.seen.length).toBe(before);
  }, 30_000);

  it('an ssl object without client.ca asks for nothing: served without a certificate', async () => {
    const r = await h3('vm', '/plain/d', null);
    expect(statuses(r), log(r)).toEqual(['200']);
    expect(seenVars(r.body('d'))).toMatchObject({ verify: 'NONE', sni: 'vm' });
    const tcp = await https('vm', '/plain/d', null);
    expect(tcp.status, tcp.stderr).toBe(200);
    expect(seenVars(tcp.body)).toEqual(seenVars(r.body('d')));
  }, 30_000);
});
