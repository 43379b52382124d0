// HTTP/3 test peers: a throwaway ECDSA P-256 certificate for localhost (Chromium needs ECDSA for QUIC), a
// gateway whose HTTPS listener has enable_http3, and ngtcp2's gtlsclient (Debian ngtcp2-client) as the client.
import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freeTcpUdpPort } from '../helpers/ports.ts';
import { tempDir } from '../helpers/proc.ts';

const run = promisify(execFile);

export interface TestCert {
  readonly key: string;
  readonly cert: string;
  readonly certFile: string;
  /** base64 SHA-256 of the SubjectPublicKeyInfo (Chromium's --ignore-certificate-errors-spki-list). */
  readonly spki: string;
  cleanup(): Promise<void>;
}

/** A self-signed ECDSA P-256 certificate for `cn` (also its DNS subjectAltName; a `*.x` name is a wildcard). */
export async function makeCert(cn = 'localhost'): Promise<TestCert> {
  const { dir, cleanup } = await tempDir('swy-h3-cert-');
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', `/CN=${cn}`, '-addext', `subjectAltName=DNS:${cn},IP:127.0.0.1`]);
  const der = await run('sh', ['-c', `openssl x509 -in ${cert} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`]);
  return { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8'), certFile: cert, spki: der.stdout.trim(), cleanup };
}

export interface H3Gateway {
  readonly t: TestGateway;
  /** The HTTPS (TCP) and HTTP/3 (UDP) port. */
  readonly port: number;
}

/** A test gateway with `apisix.ssl.listen: [{port, enable_http3: true}]` and the certificate as ssl 1. */
export async function startH3Gateway(cert: TestCert, extra: Record<string, unknown> = {}): Promise<H3Gateway> {
  const port = await freeTcpUdpPort();
  const t = await startTestGateway({
    config: { apisix: { ssl: { listen: [{ ip: '127.0.0.1', port, enable_http3: true }], fallback_sni: 'localhost' }, ...extra } },
  });
  await t.put('/ssls/1', { cert: cert.cert, key: cert.key, snis: ['localhost'] });
  return { t, port };
}

export interface GtlsResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Response header blocks in order: one record per response (first value of each name). */
  readonly responses: Array<Record<string, string>>;
  /** --download files by name. */
  readonly files: Map<string, Buffer>;
  /** The downloaded body of the URL path's last segment (gtlsclient may keep or drop the query in the name). */
  body(segment: string): Buffer | undefined;
}

export interface GtlsOptions {
  method?: string;
  data?: Buffer;
  extra?: string[];
  timeoutMs?: number;
  /**
   * gtlsclient's <HOST> (default 127.0.0.1), resolved through /etc/hosts. gtlsclient (ngtcp2 0.12, GnuTLS) sends
   * it as the TLS SNI, and `localhost` for an IP address; its --sni option has no effect in this version.
   */
  host?: string;
  /** Print QUIC CRYPTO/STREAM frame data (hex dump): the server's Certificate message is in it. */
  quicDump?: boolean;
}

/** Runs gtlsclient against the gateway (bounded by a timeout) and collects headers and downloaded bodies. */
export async function gtls(port: number, urls: string[], opts: GtlsOptions = {}): Promise<GtlsResult> {
  const { dir, cleanup } = await tempDir('swy-h3-dl-');
  try {
    const args = ['--exit-on-all-streams-close', '--no-http-dump', `--download=${dir}/dl`, '--timeout=10s'];
    if (opts.quicDump !== true) args.push('--no-quic-dump');
    if (opts.method !== undefined) args.push('-m', opts.method);
    if (opts.data !== undefined) {
      const f = path.join(dir, 'body');
      await writeFile(f, opts.data);
      args.push('-d', f);
    }
    args.push(...(opts.extra ?? []), opts.host ?? '127.0.0.1', String(port), ...urls);
    await run('mkdir', ['-p', `${dir}/dl`]);
    const child = spawn('gtlsclient', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 15_000);
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    clearTimeout(timer);
    const byStream = new Map<string, Record<string, string>>();
    for (const m of (stdout + stderr).matchAll(/http: stream (0x[0-9a-f]+) response headers started|http: stream (0x[0-9a-f]+) \[([^:\]]*|:[^:\]]*): ([^\]]*)\]/g)) {
      const id = m[1] ?? m[2]!;
      if (!byStream.has(id)) byStream.set(id, {});
      if (m[3] !== undefined) {
        const h = byStream.get(id)!;
        if (h[m[3]] === undefined) h[m[3]] = m[4]!;
      }
    }
    const files = new Map<string, Buffer>();
    for (const f of await readdir(`${dir}/dl`)) files.set(f, await readFile(path.join(dir, 'dl', f)));
    const body = (segment: string): Buffer | undefined => {
      for (const [name, b] of files) if (name === segment || name.startsWith(`${segment}?`)) return b;
      return undefined;
    };
    return { code, stdout, stderr, responses: [...byStream.values()].filter((h) => h[':status'] !== undefined), files, body };
  } finally {
    await cleanup();
  }
}

/**
 * The server's TLS handshake messages as gtlsclient saw them: the bytes of its "Ordered CRYPTO data in
 * Handshake crypto level" dumps (run with quicDump), which hold the server's Certificate message in clear.
 */
export function handshakeCrypto(r: GtlsResult): Buffer {
  const bytes: number[] = [];
  let inHandshake = false;
  for (const line of (r.stdout + r.stderr).split('\n')) {
    if (line.startsWith('Ordered CRYPTO data in ')) {
      inHandshake = line.includes('Handshake');
      continue;
    }
    const m = /^[0-9a-f]{8} {2}((?:[0-9a-f]{2} {1,2})+)/.exec(line);
    if (m === null) {
      if (!/^[0-9a-f]{8}$/.test(line)) inHandshake = false;
      continue;
    }
    if (inHandshake) for (const h of m[1]!.trim().split(/ +/)) bytes.push(parseInt(h, 16));
  }
  return Buffer.from(bytes);
}

/** The DER bytes of a PEM certificate (what a TLS Certificate message carries). */
export function certDer(pem: string): Buffer {
  return new X509Certificate(pem).raw;
}

export const CHROMIUM = '/usr/bin/chromium';

/**
 * Headless Chromium (Debian package) loads `url` with `origin` forced onto QUIC, every host name resolved to
 * 127.0.0.1, and certificate errors ignored only for the listed SPKIs (so a certificate other than those fails
 * the load). Returns the DOM it dumps (after the page's scripts ran) and its stderr.
 */
export async function chromiumDump(url: string, origin: string, spkis: string[]): Promise<{ out: string; err: string }> {
  const { dir, cleanup } = await tempDir('swy-chromium-');
  try {
    const args = [
      '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--user-data-dir=${dir}`,
      '--enable-quic', `--origin-to-force-quic-on=${origin}`,
      `--ignore-certificate-errors-spki-list=${spkis.join(',')}`, '--host-resolver-rules=MAP * 127.0.0.1',
      '--virtual-time-budget=5000', '--dump-dom', url,
    ];
    const child = spawn(CHROMIUM, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    await new Promise((resolve) => child.once('close', resolve));
    clearTimeout(timer);
    return { out, err };
  } finally {
    await cleanup();
  }
}
