// The Control API in cluster mode (`switchyard start`, 2 workers): it runs in the primary, which serves no
// traffic. Its /v1 resources come from the primary's own snapshot of the same store, its DNS dump covers a
// service only the workers' upstreams use (no health checker), and PUT /v1/plugins/reload reaches the
// workers (their routes change) as well as the primary (schema and snapshot).
import { readFile, writeFile } from 'node:fs/promises';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, baseConfig, get, ports, startCli, writeConfig, type Gw, type Ports } from '../foundation/cli-helpers.ts';
import { startDnsmasq, type Dnsmasq } from '../helpers/dnsmasq.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';

let p: Ports;
let control: string;
let gw: Gw;
let file: string;
let tmp: { dir: string; cleanup(): Promise<void> };
let dns: Dnsmasq;
let echo: EchoServer;

beforeAll(async () => {
  tmp = await tempDir('swy-control-cluster-');
  echo = await startEcho('cluster');
  dns = await startDnsmasq({ records: { 'svc.cluster.test': '127.0.0.1' } });
  p = await ports();
  const controlPort = await freePort();
  control = `http://127.0.0.1:${controlPort}`;
  const conf = baseConfig(p);
  conf.apisix.enable_control = true;
  conf.apisix.control = { ip: '127.0.0.1', port: controlPort };
  conf.discovery = { dns: { servers: [`127.0.0.1:${dns.port}`] } };
  conf.switchyard.worker_processes = 2;
  file = await writeConfig(tmp.dir, conf);
  gw = await startCli(file, p.status);
  await waitFor(async () => (await get(`http://127.0.0.1:${p.status}/status/ready`)).status === 200, 30_000, 100);
}, 45_000);

afterAll(async () => {
  await gw?.peer.stop();
  await dns?.stop();
  await echo?.close();
  await tmp?.cleanup();
});

async function ctl(path: string, method = 'GET'): Promise<{ status: number; body: string; json: any }> {
  const r = await get(control + path, { method });
  let json: unknown;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = undefined;
  }
  return { status: r.status, body: r.body, json };
}

/** True when `n` requests on fresh connections (spread over the workers by the kernel) all answer `status`. */
async function allAnswer(path: string, status: number, n: number): Promise<boolean> {
  for (let i = 0; i < n; i++) if ((await get(`http://127.0.0.1:${p.http}${path}`)).status !== status) return false;
  return true;
}

describe('control API in the cluster primary', () => {
  it('routes and the DNS dump follow the workers configuration', async () => {
    const service = `svc.cluster.test:${echo.port}`;
    const put = await admin(p, 'PUT', '/routes/c1', { uri: '/c1/*', upstream: { type: 'roundrobin', discovery_type: 'dns', service_name: service } });
    expect(put.status).toBeLessThan(300);
    await waitFor(() => allAnswer('/c1/x', 200, 1), 15_000, 50);
    expect(await allAnswer('/c1/x', 200, 10)).toBe(true);

    await waitFor(async () => (await ctl('/v1/route/c1')).status === 200, 10_000, 50);
    expect((await ctl('/v1/routes')).json.map((e: any) => e.key)).toContain('/apisix/routes/c1');
    await waitFor(async () => ((await ctl('/v1/discovery/dns/dump')).json?.services?.[service] ?? []).length > 0, 10_000, 50);
    expect((await ctl('/v1/discovery/dns/dump')).json.services[service]).toEqual([{ host: '127.0.0.1', port: echo.port, weight: 1, priority: 0 }]);

    expect((await admin(p, 'PUT', '/routes/c1', { uri: '/c2/*', upstream: { type: 'roundrobin', discovery_type: 'dns', service_name: service } })).status).toBeLessThan(300);
    await waitFor(async () => (await ctl('/v1/route/c1')).json.value.uri === '/c2/*', 10_000, 50);
    expect((await admin(p, 'DELETE', '/routes/c1')).status).toBe(200);
    await waitFor(async () => (await ctl('/v1/route/c1')).status === 404, 10_000, 50);
    expect((await ctl('/v1/route/c1')).json).toEqual({ error_msg: 'route[c1] not found' });
  });

  it('PUT /v1/plugins/reload re-reads config.yaml in the primary and the workers', async () => {
    const addr = `127.0.0.1:${echo.port}`;
    expect((await admin(p, 'PUT', '/routes/blk', { uri: '/blk/*', plugins: { 'uri-blocker': { block_rules: ['secret'] } }, upstream: { type: 'roundrobin', nodes: { [addr]: 1 } } })).status).toBeLessThan(300);
    await waitFor(() => allAnswer('/blk/secret', 403, 10), 15_000, 50);
    expect((await ctl('/v1/schema')).json.plugins['uri-blocker']).toBeDefined();

    const conf = parse(await readFile(file, 'utf8')) as Record<string, any>;
    const names = Object.keys((await ctl('/v1/schema')).json.plugins as Record<string, unknown>);
    conf.plugins = names.filter((n) => n !== 'uri-blocker');
    await writeFile(file, stringify(conf));
    const r = await ctl('/v1/plugins/reload', 'PUT');
    expect(r).toMatchObject({ status: 200, body: 'done' });

    await waitFor(async () => (await ctl('/v1/schema')).json.plugins['uri-blocker'] === undefined, 10_000, 50);
    // The standalone provider rejects an object naming a disabled plugin: the workers drop the route, and so
    // does the primary's snapshot, rebuilt in full on the reload.
    await waitFor(() => allAnswer('/blk/secret', 404, 10), 15_000, 50);
    await waitFor(async () => (await ctl('/v1/route/blk')).status === 404, 10_000, 50);
  });
});
