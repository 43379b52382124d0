// TLS fixtures of the HTTPS scenarios: a throwaway self-signed ECDSA P-256 certificate (openssl CLI; ECDSA is
// what QUIC clients such as Chromium need) and a wait for the gateway to complete a handshake for the name.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { connect as tlsConnect } from 'node:tls';

export interface BenchCert {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}

/** A self-signed certificate for `name` (and 127.0.0.1), written into `dir`. */
export function makeCert(dir: string, name: string): BenchCert {
  const certFile = path.join(dir, 'tls.crt');
  const keyFile = path.join(dir, 'tls.key');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', '2', '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name},IP:127.0.0.1`,
  ], { stdio: 'pipe' });
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), certFile, keyFile };
}

/** Resolves once the listener completes a handshake for `sni` (the ssl object reached the data plane). */
export async function waitHandshake(port: number, sni: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, servername: sni, rejectUnauthorized: false }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`no TLS handshake for ${sni} on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
