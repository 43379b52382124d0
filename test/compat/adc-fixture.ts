// Shared by the ADC tests (adc.test.ts: resource Admin API backend; adc-standalone.test.ts: the configs API
// backend; adc-record.test.ts, which records ADC's calls for adc-replay.test.ts): an echo upstream, a throwaway
// certificate, ADC's declarative file describing every resource kind ADC manages, and the data-plane checks that
// file implies (servesDeclared(), also used by the replay).
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { parse, stringify } from 'yaml';
import { runAdc, type AdcResult } from '../helpers/adc.ts';
import { ADMIN_KEY, type TestGateway } from '../helpers/gateway.ts';
import { tempDir } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { get } from '../foundation/cli-helpers.ts';

const run = promisify(execFile);

export interface AdcFixture {
  readonly dir: string;
  /** The echo upstream every declared node points at. */
  readonly echoPort: number;
  /** The declarative file (ADC's format): what a user of ADC keeps in git. A fresh copy on every call. */
  declarative(): Record<string, any>;
  writeDecl(name: string, conf: Record<string, any>): Promise<string>;
  adc(gw: TestGateway, args: string[]): Promise<AdcResult>;
  /** `adc diff`: the changes ADC would make (it writes them to diff.yaml in its working directory). */
  diff(gw: TestGateway, file: string, backend?: string, extra?: string[]): Promise<unknown[]>;
  /** Asserts the data plane serves what declarative() describes. */
  servesDeclared(gw: TestGateway): Promise<void>;
  close(): Promise<void>;
}

export interface AdcFixtureOptions {
  /** The SSL's certificate and key (PEM, CN and SAN adc.test); a fresh 2-day one when absent. The recorder
   *  passes the committed fixtures/adc/ pair so recorded bodies stay valid for replay. */
  tls?: { cert: string; key: string };
}

export interface Fetched {
  status: number;
  headers: { get(name: string): string | null };
  body: string;
}

/** One request on a fresh connection (node:http: fetch cannot set Host). */
export async function fetchText(url: string, headers: Record<string, string> = {}): Promise<Fetched> {
  const r = await get(url, { headers });
  return { status: r.status, body: r.body, headers: { get: (n) => (r.headers[n] === undefined ? null : String(r.headers[n])) } };
}

export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** Asserts the data plane serves what the fixture's declarative() describes (ADC synced it, live or replayed). */
export async function servesDeclared(gw: TestGateway): Promise<void> {
  await gw.synced();
  const anon = await fetchText(`${gw.url}/items/1`);
  expect(anon.status).toBe(401);
  expect(anon.headers.get('x-global')).toBe('adc');
  const items = await fetchText(`${gw.url}/items/1`, { apikey: 'alice-secret-key' });
  expect(items.status).toBe(200);
  const echoed = JSON.parse(items.body) as { headers: Record<string, string> };
  expect(echoed.headers['x-svc']).toBe('catalog');
  expect(echoed.headers['x-consumer-username']).toBe('alice');
  // The consumer's own limit applies (the route has none).
  expect(items.headers.get('x-ratelimit-limit')).toBe('50');
  const orders = await fetchText(`${gw.url}/orders`, { host: 'orders.test' });
  expect([orders.status, orders.headers.get('x-ratelimit-limit')]).toEqual([200, '100']);
  expect((await fetchText(`${gw.url}/orders`)).status).toBe(404);
  expect((await fetchText(`${gw.url}/private`, { host: 'orders.test', authorization: basicAuth('bob', 'bob-pw') })).status).toBe(200);
  expect((await fetchText(`${gw.url}/private`, { host: 'orders.test' })).status).toBe(401);
  // The synced certificate is served for its SNI.
  const subject = await new Promise<string>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: gw.httpsPort, servername: 'adc.test', rejectUnauthorized: false }, () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.end();
      resolve(String(cn));
    });
    s.on('error', reject);
  });
  expect(subject).toBe('adc.test');
}

export async function startAdcFixture(bin: string, opts: AdcFixtureOptions = {}): Promise<AdcFixture> {
  const echo: EchoServer = await startEcho('adc');
  const work = await tempDir('swy-adc-');
  const f = (n: string): string => path.join(work.dir, n);
  let tlsPair = opts.tls;
  if (!tlsPair) {
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('key.pem'), '-out', f('cert.pem'), '-days', '2', '-subj', '/CN=adc.test', '-addext', 'subjectAltName=DNS:adc.test']);
    const [cert, key] = await Promise.all([readFile(f('cert.pem'), 'utf8'), readFile(f('key.pem'), 'utf8')]);
    tlsPair = { cert, key };
  }
  const { cert, key } = tlsPair;
  const node = (): Record<string, unknown> => ({ host: '127.0.0.1', port: echo.port, weight: 1 });
  const adc = (gw: TestGateway, args: string[]): Promise<AdcResult> =>
    runAdc(bin, args, { server: gw.adminUrl.replace(/\/apisix\/admin$/, ''), token: ADMIN_KEY, cwd: work.dir });

  return {
    dir: work.dir,
    echoPort: echo.port,
    declarative: () => ({
      services: [
        {
          name: 'catalog',
          labels: { team: 'shop' },
          plugins: { 'proxy-rewrite': { headers: { set: { 'x-svc': 'catalog' } } } },
          upstream: { type: 'roundrobin', scheme: 'http', nodes: [node()], timeout: { connect: 5, send: 5, read: 5 } },
          routes: [
            { name: 'items', uris: ['/items/*'], methods: ['GET', 'POST'], plugins: { 'key-auth': {} } },
            { name: 'health', uris: ['/health'], priority: 5 },
          ],
        },
        {
          name: 'orders',
          hosts: ['orders.test'],
          upstream: { type: 'chash', hash_on: 'header', key: 'x-user', nodes: [node()] },
          // A label of its own: ADC's standalone backend tags extra upstreams with a label it removes on
          // reading, leaving `labels: {}` (a diff against itself) when the upstream had none.
          upstreams: [{ name: 'orders-canary', labels: { track: 'canary' }, type: 'roundrobin', nodes: [node()] }],
          routes: [
            { name: 'orders', uris: ['/orders'], plugins: { 'limit-count': { count: 100, time_window: 60, rejected_code: 429 } } },
            { name: 'private', uris: ['/private'], plugins: { 'basic-auth': {} } },
          ],
        },
      ],
      consumers: [
        {
          username: 'alice',
          labels: { tier: 'gold' },
          plugins: { 'limit-count': { count: 50, time_window: 60 } },
          credentials: [{ name: 'alice-key', type: 'key-auth', config: { key: 'alice-secret-key' } }],
        },
        { username: 'bob', credentials: [{ name: 'bob-basic', type: 'basic-auth', config: { username: 'bob', password: 'bob-pw' } }] },
      ],
      ssls: [{ snis: ['adc.test'], certificates: [{ certificate: cert, key }] }],
      global_rules: { 'response-rewrite': { headers: { set: { 'x-global': 'adc' } } } },
      plugin_metadata: { 'http-logger': { log_format: { host: '$host' } } },
    }),
    writeDecl: async (name, conf) => {
      await writeFile(f(name), stringify(conf));
      return f(name);
    },
    adc,
    diff: async (gw, file, backend = 'apisix', extra = []) => {
      const out = await adc(gw, ['diff', '--backend', backend, '-f', file, ...extra]);
      expect(out.code, out.output).toBe(0);
      return parse(await readFile(f('diff.yaml'), 'utf8')) as unknown[];
    },
    servesDeclared,
    close: async () => {
      await echo.close();
      await work.cleanup();
    },
  };
}
