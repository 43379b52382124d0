// APISIX's own config files start real gateways (issue #16). Fixtures (test/compat/fixtures/README.md): APISIX's
// conf/config.yaml.example and the config/standalone blocks of docs/en/latest/deployment-modes.md, copied
// unchanged from apache/apisix at f519a0f04ccfd4c13b5d06caf34bcde8c8593980. Each run writes a copy in a temp
// dir that changes only what a test machine needs: every listener (node_listen, ssl.listen, admin_listen,
// control, status, prometheus export_addr; added where the example relies on a default port) moved to a free
// random loopback port, etcd hosts pointed at a real etcd (the documentation's `https://${etcd_IP}:${etcd_Port}`
// placeholders become that etcd's plain-HTTP address), and upstream nodes of the standalone examples
// (127.0.0.1:1980/1981, `${{UPSTREAM_ADDR}}`) pointed at echo servers of this test. Then `switchyard start -c`
// runs on the copy and real clients prove what each deployment mode serves. Copies of the deployment-modes
// examples also get `switchyard.worker_processes: 1` (their default, like APISIX's, is one worker per CPU);
// config.yaml.example keeps its `nginx_config.worker_processes: auto`, so one start covers the cluster.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseDocument } from 'yaml';
import { get, startCli, type Gw } from '../foundation/cli-helpers.ts';
import { startEtcd, type EtcdPeer } from '../helpers/etcd.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoReply, type EchoServer } from '../helpers/upstream.ts';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 30_000 });

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const fixture = (name: string): string => readFileSync(path.join(FIX, name), 'utf8');
const LO = '127.0.0.1';

interface Listeners {
  http: number;
  https: number;
  admin: number;
  control: number;
  status: number;
  prometheus: number;
}

async function listeners(): Promise<Listeners> {
  const taken = new Set<number>();
  const next = async (): Promise<number> => {
    for (let i = 0; i < 20; i++) {
      const p = await freePort();
      if (!taken.has(p)) {
        taken.add(p);
        return p;
      }
    }
    throw new Error('no free port');
  };
  return { http: await next(), https: await next(), admin: await next(), control: await next(), status: await next(), prometheus: await next() };
}

/**
 * The example with every listener on `l` (loopback) and etcd hosts on `etcd`; comments and every other key
 * are kept as written. Throws on listeners this rewrite does not know, so none stays on a fixed port.
 */
function localize(text: string, l: Listeners, etcd?: string, oneProcess = true): string {
  const doc = parseDocument(text);
  if (oneProcess) doc.setIn(['switchyard', 'worker_processes'], 1);
  if (doc.hasIn(['apisix', 'stream_proxy'])) throw new Error('stream_proxy listeners are not rewritten here');
  doc.setIn(['apisix', 'node_listen'], [{ ip: LO, port: l.http }]);
  // Keeps the example's other listen options (enable_http3).
  const sslEntry = (doc.toJS() as { apisix?: { ssl?: { listen?: object[] } } } | null)?.apisix?.ssl?.listen?.[0] ?? {};
  doc.setIn(['apisix', 'ssl', 'listen'], [{ ...sslEntry, ip: LO, port: l.https }]);
  doc.setIn(['apisix', 'control'], { ip: LO, port: l.control });
  doc.setIn(['apisix', 'status'], { ip: LO, port: l.status });
  doc.setIn(['deployment', 'admin', 'admin_listen'], { ip: LO, port: l.admin });
  doc.setIn(['plugin_attr', 'prometheus', 'export_addr'], { ip: LO, port: l.prometheus });
  if (etcd !== undefined) doc.setIn(['deployment', 'etcd', 'host'], [etcd]);
  return doc.toString();
}

/** Pino JSON lines of the gateway at warn level, as `msg` texts. */
function warnings(gw: Gw): string[] {
  const out: string[] = [];
  for (const line of gw.peer.output().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const o = JSON.parse(line) as { level?: number; msg?: string; plugins?: string[] };
      if (o.level === 40) out.push(o.plugins ? `${o.msg ?? ''} ${o.plugins.join(',')}` : (o.msg ?? ''));
    } catch {
      /* a partial line */
    }
  }
  return out;
}

/** The admin key `start` generated for the example's empty/missing key, as printed on the terminal. */
function generatedKey(gw: Gw): string {
  const m = /generated admin API key "([A-Za-z]+)" for "admin"/.exec(gw.peer.output());
  if (!m) throw new Error(`no generated admin key in: ${gw.peer.output().slice(-2000)}`);
  return m[1]!;
}

async function adminCall(l: Listeners, key: string, method: string, route: string, body?: unknown, headers: Record<string, string> = {}) {
  const r = await get(`http://${LO}:${l.admin}/apisix/admin${route}`, {
    method,
    headers: { 'x-api-key': key, 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: r.body === '' ? undefined : (JSON.parse(r.body) as Record<string, any>) };
}

/** true when something accepts TCP connections on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: LO, port });
    s.setTimeout(2000);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

const NOT_FOUND = { status: 404, body: '{"error_msg":"404 Route Not Found"}\n' };
async function notFound(l: Listeners, p = '/no-route-here'): Promise<{ status: number; body: string }> {
  const r = await get(`http://${LO}:${l.http}${p}`);
  return { status: r.status, body: r.body };
}

/** GET on the proxy port; the echo's view of the request when it answered. */
async function proxied(l: Listeners, p: string): Promise<{ status: number; body: string; echo?: EchoReply }> {
  const r = await get(`http://${LO}:${l.http}${p}`);
  let echo: EchoReply | undefined;
  if (r.status === 200 && r.body.startsWith('{')) echo = JSON.parse(r.body) as EchoReply;
  return { status: r.status, body: r.body, echo };
}

/** The subject CN of the certificate served for `sni` on the HTTPS port. */
function servedCertCn(l: Listeners, sni: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: LO, port: l.https, servername: sni, rejectUnauthorized: false }, () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.destroy();
      resolve(String(cn));
    });
    s.setTimeout(3000, () => s.destroy(new Error('tls timeout')));
    s.once('error', reject);
  });
}

let etcd: EtcdPeer;
let tmp: { dir: string; cleanup(): Promise<void> };
const echoes: EchoServer[] = [];
const gateways: Gw[] = [];

async function echo(name: string): Promise<EchoServer> {
  const e = await startEcho(name);
  echoes.push(e);
  return e;
}

async function start(name: string, text: string, l: Listeners, env: NodeJS.ProcessEnv = {}): Promise<{ gw: Gw; file: string }> {
  const dir = path.join(tmp.dir, name);
  const file = path.join(dir, 'config.yaml');
  await mkdir(dir, { recursive: true });
  await writeFile(file, text);
  const gw = await startCli(file, l.status, env);
  gateways.push(gw);
  // Every worker has its configuration (status/ready), so the proxy port answers from here on.
  await waitFor(async () => (await get(`http://${LO}:${l.status}/status/ready`)).status === 200, 45_000, 100);
  return { gw, file };
}

/** SIGTERM (graceful, idle) and waits for exit 0; the helper escalates to SIGKILL after 5 s. */
async function stop(gw: Gw): Promise<void> {
  await gw.peer.stop('SIGTERM');
  expect(await gw.exited).toBe(0);
}

beforeAll(async () => {
  [etcd, tmp] = await Promise.all([startEtcd(), tempDir('swy-config-start-')]);
});
afterAll(async () => {
  for (const gw of gateways) await gw.peer.stop('SIGKILL');
  await Promise.all(echoes.map((e) => e.close()));
  await etcd?.stop();
  await tmp?.cleanup();
});

describe("APISIX's config files start the gateway", () => {
  it('config.yaml.example: traditional on etcd, every listener serves, keys without effect are warned about', async () => {
    await etcd.etcdctl('del', '--prefix', '/apisix');
    const l = await listeners();
    // worker_processes: auto in the example: a cluster primary with one worker per CPU.
    const { gw } = await start('example', localize(fixture('config.yaml.example'), l, etcd.endpoint, false), l);
    const key = generatedKey(gw);
    const up = await echo('example');

    await waitFor(async () => (await notFound(l)).status === 404, 20_000, 50);
    expect(await notFound(l)).toEqual(NOT_FOUND);
    const put = await adminCall(l, key, 'PUT', '/routes/r1', { uri: '/hello', upstream: { type: 'roundrobin', nodes: { [up.addr]: 1 } } });
    expect(put.status).toBe(201);
    await waitFor(async () => (await proxied(l, '/hello')).echo?.server === 'example', 20_000, 50);
    expect((await adminCall(l, 'wrong-key', 'GET', '/routes')).status).toBe(401);
    expect((await adminCall(l, key, 'GET', '/routes/r1')).json?.value?.uri).toBe('/hello');
    // The SSL listener accepts connections (no certificate is configured, so no handshake completes).
    expect(await listening(l.https)).toBe(true);
    expect((await get(`http://${LO}:${l.control}/v1/healthcheck`)).status).toBe(200);
    const metrics = await get(`http://${LO}:${l.prometheus}/apisix/prometheus/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^apisix_/m);

    const warned = warnings(gw);
    for (const k of [
      'apisix.enable_ipv6',
      'apisix.max_post_args_readable_size',
      'apisix.worker_startup_time_threshold',
      'apisix.proxy_cache',
      'apisix.lru',
      'apisix.resolver_timeout',
      'apisix.ssl.ssl_session_tickets',
      'deployment.etcd.watch_timeout',
      'graphql',
    ]) {
      expect(warned.some((w) => w.startsWith(`${k}: accepted for APISIX compatibility but not implemented`)), k).toBe(true);
    }
    expect(warned.find((w) => w.startsWith('nginx_config: accepted for APISIX compatibility'))).toMatch(/not implemented: error_log, error_log_level, /);
    // Plugins of the example's list that Switchyard does not have (Lua/external runners) are named, not fatal.
    expect(warned.find((w) => w.startsWith('plugins listed in config.yaml are not available; skipped'))).toMatch(/\bext-plugin-pre-req\b.*\bext-plugin-post-resp\b/);
    await stop(gw);
  });

  it('deployment-modes traditional (etcd): proxy on node_listen, Admin API on admin_listen', async () => {
    await etcd.etcdctl('del', '--prefix', '/apisix');
    const l = await listeners();
    const { gw } = await start('traditional', localize(fixture('deployment-modes/config-01-L48.yaml'), l, etcd.endpoint), l);
    const key = generatedKey(gw);
    const up = await echo('traditional');
    expect(await notFound(l)).toEqual(NOT_FOUND);
    expect((await adminCall(l, key, 'PUT', '/upstreams/u1', { type: 'roundrobin', nodes: { [up.addr]: 1 } })).status).toBe(201);
    expect((await adminCall(l, key, 'PUT', '/routes/r1', { uri: '/hello', upstream_id: 'u1' })).status).toBe(201);
    await waitFor(async () => (await proxied(l, '/hello')).echo?.server === 'traditional', 20_000, 50);
    expect(warnings(gw)).toEqual([]);
    await stop(gw);
  });

  it('deployment-modes decoupled: the control plane serves only the Admin API, the data plane only traffic', async () => {
    await etcd.etcdctl('del', '--prefix', '/apisix');
    const cpL = await listeners();
    const dpL = await listeners();
    const [cp, dp] = await Promise.all([
      start('control-plane', localize(fixture('deployment-modes/config-03-L99.yaml'), cpL, etcd.endpoint), cpL),
      start('data-plane', localize(fixture('deployment-modes/config-02-L82.yaml'), dpL, etcd.endpoint), dpL),
    ]);
    const key = generatedKey(cp.gw);
    const up = await echo('decoupled');
    // Written through the control plane, served by the data plane over the shared etcd.
    expect((await adminCall(cpL, key, 'PUT', '/routes/r1', { uri: '/hello', upstream: { type: 'roundrobin', nodes: { [up.addr]: 1 } } })).status).toBe(201);
    await waitFor(async () => (await proxied(dpL, '/hello')).echo?.server === 'decoupled', 20_000, 50);
    expect(await notFound(dpL)).toEqual(NOT_FOUND);
    // No proxy listener on the control plane, no Admin API on the data plane (its admin_listen is ignored).
    expect(await listening(cpL.http)).toBe(false);
    expect(await listening(dpL.admin)).toBe(false);
    expect(dp.gw.peer.output()).not.toMatch(/generated admin API key/);
    await Promise.all([stop(cp.gw), stop(dp.gw)]);
  });

  it('deployment-modes API-driven standalone (traditional + yaml): PUT /apisix/admin/configs, then traffic', async () => {
    const l = await listeners();
    const { gw } = await start('api-driven', localize(fixture('deployment-modes/config-06-L169.yaml'), l), l);
    const key = generatedKey(gw);
    const up = await echo('api-driven');
    expect(await notFound(l, '/hello')).toEqual(NOT_FOUND);
    // The body is the documentation's JSON standalone example (standalone-11) on the echo upstream.
    const body = fixture('deployment-modes/standalone-11-L355.json').replaceAll('127.0.0.1:1980', up.addr);
    const r = await get(`http://${LO}:${l.admin}/apisix/admin/configs`, {
      method: 'PUT',
      headers: { 'x-api-key': key, 'content-type': 'application/json', 'x-digest': 'config-start#1' },
      body,
    });
    expect(r.status).toBe(202);
    await waitFor(async () => (await proxied(l, '/hello')).echo?.server === 'api-driven', 20_000, 50);
    await stop(gw);
  });
});

describe('deployment-modes file-driven standalone (data_plane + yaml / json) with the documentation examples', () => {
  /** Replaces the standalone file atomically (the store must never read half a file). */
  async function install(file: string, text: string): Promise<void> {
    const part = `${file}.${randomUUID()}.part`;
    await writeFile(part, text);
    await rename(part, file);
  }

  /** Installs `example` with its upstreams on fresh echo servers; resolves once /hello answers from them. */
  async function serveExample(l: Listeners, file: string, example: string, expectBody?: string): Promise<EchoServer> {
    const [a, b] = await Promise.all([echo(`${example}#a`), echo(`${example}#b`)]);
    const text = fixture(`deployment-modes/${example}`).replaceAll('127.0.0.1:1980', a.addr).replaceAll('127.0.0.1:1981', b.addr);
    await install(file, text);
    if (expectBody !== undefined) {
      await waitFor(async () => (await proxied(l, '/hello')).body === expectBody, 20_000, 50);
      expect(a.seen.length).toBeGreaterThan(0);
    } else {
      await waitFor(async () => (await proxied(l, '/hello')).echo?.server === a.name, 20_000, 50);
    }
    if (text.includes('/hello2')) expect((await proxied(l, '/hello2')).echo?.server).toBe(b.name);
    else expect((await notFound(l, '/hello2')).status).toBe(404);
    return a;
  }

  async function checkNoAdmin(l: Listeners, gw: Gw): Promise<void> {
    expect(await listening(l.admin)).toBe(false);
    expect(gw.peer.output()).not.toMatch(/generated admin API key/);
  }

  it('config_provider yaml: conf/apisix.yaml examples hot-reload one after the other', async () => {
    const l = await listeners();
    const dir = path.join(tmp.dir, 'dp-yaml');
    const named = await echo('upstream-addr');
    // standalone-10 names its node through ${{UPSTREAM_ADDR}}, resolved from the gateway's environment.
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'apisix.yaml'), fixture('deployment-modes/standalone-10-L331.yaml'));
    const { gw } = await start('dp-yaml', localize(fixture('deployment-modes/config-04-L137.yaml'), l), l, { UPSTREAM_ADDR: named.addr });
    const file = path.join(dir, 'apisix.yaml');
    await waitFor(async () => (await proxied(l, '/hello')).echo?.server === 'upstream-addr', 20_000, 50);
    await checkNoAdmin(l, gw);
    for (const ex of ['standalone-09-L316.yaml', 'standalone-14-L419.yaml', 'standalone-16-L473.yaml', 'standalone-18-L522.yaml', 'standalone-20-L568.yaml']) {
      await serveExample(l, file, ex);
    }
    // A plugin_config (response-rewrite) applied to the proxied route.
    await serveExample(l, file, 'standalone-24-L663.yaml', 'hello\n');
    expect(warnings(gw)).toEqual([]);
    await stop(gw);
  });

  it('config_provider json: conf/apisix.json examples, including its SSL object on the HTTPS listener', async () => {
    const l = await listeners();
    const dir = path.join(tmp.dir, 'dp-json');
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, 'apisix.json');
    const first = await echo('json-first');
    await writeFile(file, fixture('deployment-modes/standalone-11-L355.json').replaceAll('127.0.0.1:1980', first.addr));
    const { gw } = await start('dp-json', localize(fixture('deployment-modes/config-05-L148.yaml'), l), l);
    await waitFor(async () => (await proxied(l, '/hello')).echo?.server === 'json-first', 20_000, 50);
    await checkNoAdmin(l, gw);
    for (const ex of ['standalone-15-L440.json', 'standalone-17-L492.json', 'standalone-19-L540.json', 'standalone-21-L590.json']) {
      await serveExample(l, file, ex);
    }
    await serveExample(l, file, 'standalone-25-L685.json', 'hello\n');
    // The SSL example alone: its certificate (CN etcd.cluster.local) is served for its SNI; no routes remain.
    await install(file, fixture('deployment-modes/standalone-27-L785.json'));
    await waitFor(async () => (await servedCertCn(l, 'yourdomain.com').catch(() => '')) === 'etcd.cluster.local', 20_000, 50);
    expect(await notFound(l, '/hello')).toEqual(NOT_FOUND);
    await stop(gw);
  });
});
