// A throwaway PKI made with the openssl CLI (an independent reference, not node's crypto): a server CA, server
// certificates with chosen serials and subjects, and a separate client CA with one client certificate.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface Pem {
  readonly cert: string;
  readonly key: string;
  /** Files on disk (for curl/openssl/nginx). */
  readonly certFile: string;
  readonly keyFile: string;
  /** Hex serial as openssl prints it (upper case). */
  readonly serial: string;
}

export interface Pki {
  readonly dir: string;
  readonly caFile: string;
  readonly ca: string;
  /** Issues a server certificate for `sans`, subject CN=`cn`, with the given hex serial. */
  server(name: string, cn: string, sans: readonly string[], serial: string): Pem;
  /** As server(), with an RSA 2048 key (server() makes ECDSA P-256 keys); same server CA. */
  serverRsa(name: string, cn: string, sans: readonly string[], serial: string): Pem;
  /** The client-certificate CA (distinct from the server CA). */
  readonly clientCaFile: string;
  readonly clientCa: string;
  /** Issues a client certificate signed by the client CA (or by the server CA with `foreign`). */
  client(name: string, cn: string, serial: string, foreign?: boolean): Pem;
  /** Issues an intermediate CA under the client CA, or under `parent` (an intermediate issued before). */
  intermediate(name: string, cn: string, serial: string, parent?: string): Pem;
  /**
   * Issues a client certificate signed by the intermediate `issuer`; its certFile holds the certificate
   * followed by the intermediates up to (not including) the client CA, as a client sends them.
   */
  clientUnder(name: string, cn: string, serial: string, issuer: string): Pem;
}

function run(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function selfSigned(dir: string, base: string, cn: string): void {
  run(dir, [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', `${base}.key`, '-out', `${base}.crt`, '-days', '2', '-subj', `/CN=${cn}`,
  ]);
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
const RSA_KEY = ['-newkey', 'rsa:2048'];

function issue(dir: string, ca: string, base: string, cn: string, serial: string, ext: string, keyArgs = EC_KEY): Pem {
  const f = (e: string) => path.join(dir, `${base}.${e}`);
  writeFileSync(f('ext'), ext);
  run(dir, ['req', ...keyArgs, '-nodes', '-keyout', f('key'), '-out', f('csr'), '-subj', `/CN=${cn}`]);
  run(dir, [
    'x509', '-req', '-in', f('csr'), '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-set_serial', `0x${serial}`,
    '-days', '2', '-out', f('crt'), '-extfile', f('ext'),
  ]);
  return { cert: readFileSync(f('crt'), 'utf8'), key: readFileSync(f('key'), 'utf8'), certFile: f('crt'), keyFile: f('key'), serial: serial.toUpperCase() };
}

function serverExt(sans: readonly string[]): string {
  return `subjectAltName=${sans.map((s) => `DNS:${s}`).join(',')}\nextendedKeyUsage=serverAuth\n`;
}

export function makePki(dir: string): Pki {
  /** Intermediate name -> its certificate followed by its own intermediates (PEM). */
  const chains = new Map<string, string>();
  selfSigned(dir, 'ca', 'Switchyard Test Server CA');
  selfSigned(dir, 'client-ca', 'Switchyard Test Client CA');
  return {
    dir,
    caFile: path.join(dir, 'ca.crt'),
    ca: readFileSync(path.join(dir, 'ca.crt'), 'utf8'),
    clientCaFile: path.join(dir, 'client-ca.crt'),
    clientCa: readFileSync(path.join(dir, 'client-ca.crt'), 'utf8'),
    server: (name, cn, sans, serial) => issue(dir, 'ca', name, cn, serial, serverExt(sans)),
    serverRsa: (name, cn, sans, serial) => issue(dir, 'ca', name, cn, serial, serverExt(sans), RSA_KEY),
    client: (name, cn, serial, foreign = false) => issue(dir, foreign ? 'ca' : 'client-ca', name, cn, serial, 'extendedKeyUsage=clientAuth\n'),
    intermediate: (name, cn, serial, parent) => {
      const pem = issue(dir, parent ?? 'client-ca', name, cn, serial, 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
      chains.set(name, pem.cert + (parent === undefined ? '' : chains.get(parent)!));
      return pem;
    },
    clientUnder: (name, cn, serial, issuer) => {
      const pem = issue(dir, issuer, name, cn, serial, 'extendedKeyUsage=clientAuth\n');
      const certFile = path.join(dir, `${name}.chain.crt`);
      writeFileSync(certFile, pem.cert + chains.get(issuer)!);
      return { ...pem, certFile };
    },
  };
}

/** The client certificates an mTLS test drives through a listener (clientCerts). */
export interface ClientCerts {
  /** Signed by the client CA, CN=client-one. */
  readonly client: Pem;
  /** Signed by the server CA (another CA than client.ca), CN=client-foreign. */
  readonly foreign: Pem;
  /** One (CN=Client Intermediate One) and two intermediate CAs below the client CA; certFile holds the chain. */
  readonly viaOne: Pem;
  readonly viaTwo: Pem;
}

/** Issues the ClientCerts set on `pki` (serials 0D01-0D04, intermediates 0E01-0E02). */
export function clientCerts(pki: Pki): ClientCerts {
  const client = pki.client('client', 'client-one', '0D01');
  const foreign = pki.client('foreign', 'client-foreign', '0D02', true);
  pki.intermediate('int1', 'Client Intermediate One', '0E01');
  pki.intermediate('int2', 'Client Intermediate Two', '0E02', 'int1');
  const viaOne = pki.clientUnder('via-one', 'client-via-one', '0D03', 'int1');
  const viaTwo = pki.clientUnder('via-two', 'client-via-two', '0D04', 'int2');
  return { client, foreign, viaOne, viaTwo };
}

export interface ServedCert {
  /** The handshake completed. */
  readonly ok: boolean;
  readonly subject: string;
  /** Upper-case hex, as `openssl x509 -serial` prints it. */
  readonly serial: string;
  /** The negotiated protocol and cipher as s_client reports them ('' when the handshake failed). */
  readonly protocol: string;
  readonly cipher: string;
  /** The served certificate's public key algorithm as `openssl x509 -text` names it (id-ecPublicKey, rsaEncryption). */
  readonly keyType: string;
  readonly output: string;
}

/** Runs a command with empty stdin (async: the gateway under test lives in this process). */
export function exec(cmd: string, args: readonly string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/**
 * The certificate the server presents, read with `openssl s_client` (with `-servername` when `sni` is given,
 * `-noservername` otherwise) and decoded by `openssl x509`.
 */
/** Public key algorithms as `openssl x509 -text` names them (ServedCert.keyType). */
export const EC = 'id-ecPublicKey';
export const RSA = 'rsaEncryption';
/** openssl s_client options for a client that accepts one key type: TLS 1.3 by signature algorithm, TLS 1.2 by ECDHE cipher suite. */
export const ONLY_EC_13 = ['-tls1_3', '-sigalgs', 'ecdsa_secp256r1_sha256'];
export const ONLY_RSA_13 = ['-tls1_3', '-sigalgs', 'rsa_pss_rsae_sha256'];
export const ONLY_EC_12 = ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'];
export const ONLY_RSA_12 = ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'];

export async function servedCert(port: number, sni: string | null, extra: readonly string[] = []): Promise<ServedCert> {
  const r = await exec('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...(sni === null ? ['-noservername'] : ['-servername', sni]), ...extra]);
  const output = r.stdout + r.stderr;
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout);
  if (r.code !== 0 || pem === null) return { ok: false, subject: '', serial: '', protocol: '', cipher: '', keyType: '', output };
  const info = (await exec('openssl', ['x509', '-noout', '-subject', '-serial', '-nameopt', 'RFC2253'], pem[0])).stdout;
  const text = (await exec('openssl', ['x509', '-noout', '-text'], pem[0])).stdout;
  // s_client's summary line: "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384".
  const summary = /^New, (\S+), Cipher is (\S+)$/m.exec(r.stdout);
  return {
    ok: true,
    subject: /^subject=(.*)$/m.exec(info)?.[1]?.trim() ?? '',
    serial: /^serial=(.*)$/m.exec(info)?.[1]?.trim() ?? '',
    protocol: summary?.[1] ?? '',
    cipher: summary?.[2] ?? '',
    keyType: /Public Key Algorithm: (\S+)/.exec(text)?.[1] ?? '',
    output,
  };
}
