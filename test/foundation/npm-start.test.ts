// `npm start` (node bin/switchyard.mjs start -c conf/config.yaml) on the shipped conf/ files, copied to a temp
// dir with the ports moved to free loopback ports: serves the Admin API with a generated key and no etcd.
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse, parseDocument } from 'yaml';
import { freePort } from '../helpers/ports.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { REPO, admin, get, killAll, served, startCli, type Ports } from './cli-helpers.ts';

// Each test spawns the CLI (a cold Node start loading the TypeScript sources); generous on a loaded machine.
vi.setConfig({ testTimeout: 60_000 });

let echo: EchoServer;
let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  echo = await startEcho('npm-start');
  ({ dir, cleanup } = await tempDir('swy-npmstart-'));
});
afterAll(async () => {
  await killAll();
  await echo.close();
  await cleanup();
});

describe('npm start with the shipped conf/', () => {
  it('starts with no etcd, generates and prints the admin key, serves Admin API writes', async () => {
    const pkg = JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as { scripts: { start: string } };
    expect(pkg.scripts.start).toBe('node bin/switchyard.mjs start -c conf/config.yaml');

    const p: Ports = { http: await freePort(), admin: await freePort(), status: await freePort() };
    const control = await freePort();
    const doc = parseDocument(await readFile(path.join(REPO, 'conf/config.yaml'), 'utf8'));
    expect(doc.getIn(['deployment', 'admin', 'admin_key', 0, 'key'])).toBe('');
    doc.setIn(['apisix', 'node_listen'], doc.createNode([{ ip: '127.0.0.1', port: p.http }]));
    doc.setIn(['apisix', 'ssl', 'listen'], doc.createNode([{ ip: '127.0.0.1', port: await freePort() }]));
    doc.setIn(['apisix', 'status', 'port'], p.status);
    doc.setIn(['apisix', 'control', 'port'], control);
    doc.setIn(['deployment', 'admin', 'admin_listen', 'port'], p.admin);
    doc.setIn(['switchyard', 'access_log', 'enable'], false);
    const metrics = await freePort();
    doc.setIn(['plugin_attr', 'prometheus'], doc.createNode({ export_addr: { ip: '127.0.0.1', port: metrics } }));
    // An etcd endpoint nobody listens on: the default provider must not need it.
    doc.setIn(['deployment', 'etcd', 'host'], doc.createNode([`http://127.0.0.1:${await freePort()}`]));
    const cfg = path.join(dir, 'config.yaml');
    await writeFile(cfg, doc.toString());
    await copyFile(path.join(REPO, 'conf/apisix.yaml'), path.join(dir, 'apisix.yaml'));

    const gw = await startCli(cfg, p.status);
    const key = (parse(await readFile(cfg, 'utf8')) as any).deployment.admin.admin_key[0].key as string;
    expect(key).toMatch(/^[A-Za-z]{32}$/);
    expect(gw.peer.output()).toContain(`generated admin API key "${key}"`);
    await waitFor(async () => (await get(`http://127.0.0.1:${p.status}/status/ready`)).status === 200, 30_000, 50);

    expect((await admin(p, 'GET', '/routes', undefined, key)).body).toMatchObject({ total: 0, list: [] });
    expect((await admin(p, 'GET', '/routes', undefined, '')).status).toBe(401);
    expect((await admin(p, 'PUT', '/upstreams/u', { type: 'roundrobin', nodes: { [echo.addr]: 1 } }, key)).status).toBe(201);
    expect((await admin(p, 'PUT', '/routes/hello', { uri: '/hello', upstream_id: 'u' }, key)).status).toBe(201);
    await served(`http://127.0.0.1:${p.http}/hello`);
    const stored = await readFile(path.join(dir, 'apisix.yaml'), 'utf8');
    expect(stored).toContain('hello');
    expect(stored.trimEnd().endsWith('#END')).toBe(true);

    const scrape = await get(`http://127.0.0.1:${metrics}/apisix/prometheus/metrics`);
    expect(scrape.status).toBe(200);

    await gw.peer.stop('SIGTERM');
    expect(await gw.exited).toBe(0);
  }, 60_000);
});
