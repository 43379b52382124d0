// `npm start` (node bin/switchyard.mjs start -c conf/config.yaml) on the shipped conf/ files, copied to a temp
// dir with the ports moved to free loopback ports: serves the Admin API with a generated key and no etcd, and
// the README's "Try it" commands work on it as written.
import { execFile } from 'node:child_process';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse, parseDocument } from 'yaml';
import { freePort } from '../helpers/ports.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { REPO, admin, get, killAll, served, startCli, type Ports } from './cli-helpers.ts';

const run = promisify(execFile);

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
    const pkg = JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as { scripts: { start: string; prestart: string } };
    expect(pkg.scripts.start).toBe('node bin/switchyard.mjs start -c conf/config.yaml');
    // npm start runs prestart first: the dashboard bundle is rebuilt when its sources are newer.
    expect(pkg.scripts.prestart).toBe('node scripts/build-ui.mjs --if-stale');
    await run(process.execPath, ['scripts/build-ui.mjs', '--if-stale'], { cwd: REPO });

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
    // The dashboard on the Admin listener serves the built bundle: the page's one script is the hashed build output.
    const ui = await get(`http://127.0.0.1:${p.admin}/ui/`);
    expect(ui.status).toBe(200);
    expect(ui.headers['content-type']).toMatch(/^text\/html/);
    const scripts = [...ui.body.matchAll(/<script\b[^>]*\bsrc="([^"]+)"/g)].map((m) => m[1]);
    expect(scripts).toHaveLength(1);
    expect(scripts[0]).toMatch(/^\/ui\/app-[A-Z0-9]{8}\.js$/);
    const bundle = await get(`http://127.0.0.1:${p.admin}${scripts[0]}`);
    expect(bundle.status).toBe(200);
    expect(bundle.headers['content-type']).toMatch(/^text\/javascript/);
    expect(bundle.body).toBe(await readFile(path.join(REPO, 'build', scripts[0]!), 'utf8'));
    expect((await admin(p, 'PUT', '/upstreams/u', { type: 'roundrobin', nodes: { [echo.addr]: 1 } }, key)).status).toBe(201);
    expect((await admin(p, 'PUT', '/routes/echo', { uri: '/echo', upstream_id: 'u' }, key)).status).toBe(201);
    await served(`http://127.0.0.1:${p.http}/echo`);
    const stored = await readFile(path.join(dir, 'apisix.yaml'), 'utf8');
    expect(stored).toContain('echo');
    expect(stored.trimEnd().endsWith('#END')).toBe(true);

    // The README's "Try it" block as written, on this gateway: only its ports and config path are rewritten.
    const readme = await readFile(path.join(REPO, 'README.md'), 'utf8');
    const block = /## Try it[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    const rewritten = block!.replaceAll('127.0.0.1:9180', `127.0.0.1:${p.admin}`).replaceAll('127.0.0.1:9080', `127.0.0.1:${p.http}`).replaceAll('conf/config.yaml', cfg);
    // A person types the next command after the data plane has applied the route (it follows the Admin API
    // write within milliseconds); the script waits the same way, bounded: after each route PUT, until its uri
    // no longer answers 404.
    const script = rewritten.replace(/\\\n/g, '\u0000').split('\n').map((cmd) => {
      const line = cmd.replaceAll('\u0000', '\\\n');
      const uri = /-X PUT \S+\/apisix\/admin\/routes\/[\s\S]*?"uri":"([^"]+)"/.exec(line)?.[1];
      if (uri === undefined) return line;
      return `${line}\nfor i in $(seq 300); do [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:${p.http}${uri})" != 404 ] && break; sleep 0.1; done`;
    }).join('\n');
    const { stdout: out } = await run('bash', ['-euo', 'pipefail', '-c', script], { encoding: 'utf8', timeout: 30_000 });
    // Both routes created (APISIX's 201 bodies carry the key), /hello answered by itself, /get proxied to it.
    expect(out).toContain('"key":"/apisix/routes/hello"');
    expect(out).toContain('"key":"/apisix/routes/get"');
    expect(out.match(/\{"hello":"world"\}/g)?.length, out).toBe(2);
    expect(out).toMatch(/HTTP\/1\.1 200 OK\r?\n/);

    const scrape = await get(`http://127.0.0.1:${metrics}/apisix/prometheus/metrics`);
    expect(scrape.status).toBe(200);

    await gw.peer.stop('SIGTERM');
    expect(await gw.exited).toBe(0);
  }, 60_000);
});
