// Reload without restart through the real CLI: `switchyard reload -c <config>` (SIGHUP to the pid in
// <config dir>/logs/switchyard.pid) re-reads config.yaml. The plugins list and plugin_attr change live: with the
// yaml provider a stored route using a plugin no longer listed is skipped as invalid ("unknown plugin", APISIX's
// plugin_checker does not skip disabled plugins for yaml/json) and new routes using it are refused; listener changes are logged as needing a restart; an invalid file changes nothing. With
// workers the primary hands the validated change to every worker over IPC.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { freePort } from '../helpers/ports.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { admin, baseConfig, get, killAll, ports, runCli, served, startCli, writeConfig, type Gw, type Ports } from './cli-helpers.ts';

vi.setConfig({ testTimeout: 60_000 });

let echo: EchoServer;

beforeAll(async () => {
  echo = await startEcho('reload');
});
afterAll(async () => {
  await killAll();
  await echo.close();
});

const PLUGINS = ['key-auth', 'redirect', 'proxy-rewrite'];

function config(p: Ports, plugins: string[], httpsPort: number, workers = 1): Record<string, any> {
  const conf = baseConfig(p);
  conf.plugins = plugins;
  conf.plugin_attr.redirect = { https_port: httpsPort };
  conf.switchyard.worker_processes = workers;
  return conf;
}

async function setup(p: Ports): Promise<void> {
  const up = { type: 'roundrobin', nodes: { [echo.addr]: 1 } };
  expect((await admin(p, 'PUT', '/consumers', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } })).status).toBeLessThan(300);
  expect((await admin(p, 'PUT', '/routes/ka', { uri: '/ka/*', plugins: { 'key-auth': {} }, upstream: up })).status).toBe(201);
  expect((await admin(p, 'PUT', '/routes/rd', { uri: '/rd', plugins: { redirect: { http_to_https: true } }, upstream: up })).status).toBe(201);
  await served(`http://127.0.0.1:${p.http}/ka/x`, 401);
}

/** `n` requests on fresh connections; how many answered `status`. */
async function count(url: string, status: number, n: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) if ((await get(url)).status === status) ok++;
  return ok;
}

describe('switchyard reload', () => {
  it('applies the plugins list and plugin_attr live, reports restart-only keys, ignores an invalid file', async () => {
    const { dir, cleanup } = await tempDir('swy-reload-');
    try {
      const p = await ports();
      const file = await writeConfig(dir, config(p, PLUGINS, 9443));
      const gw: Gw = await startCli(file, p.status, { SWITCHYARD_LOG_LEVEL: 'info' });
      const pidFile = path.join(dir, 'logs', 'switchyard.pid');
      const pid = Number((await readFile(pidFile, 'utf8')).trim());
      expect(pid).toBe(gw.peer.pid);
      await setup(p);
      const rd = await get(`http://127.0.0.1:${p.http}/rd`, { headers: { host: 'example.com' } });
      expect(rd.headers.location).toBe('https://example.com:9443/rd');

      // key-auth no longer listed, the redirect port changed, and a listener change that needs a restart.
      const next = config(p, ['redirect', 'proxy-rewrite'], 8443);
      const otherPort = await freePort();
      next.apisix.node_listen = [{ ip: '127.0.0.1', port: p.http }, { ip: '127.0.0.1', port: otherPort }];
      await writeFile(file, stringify(next));
      const out = await runCli(['reload', '-c', file]);
      expect(out.code, out.stderr).toBe(0);

      await served(`http://127.0.0.1:${p.http}/ka/x`, 404);
      await waitFor(() => gw.peer.output().includes('unknown plugin [key-auth]'), 5000, 20);
      const rd2 = await get(`http://127.0.0.1:${p.http}/rd`, { headers: { host: 'example.com' } });
      expect(rd2.headers.location).toBe('https://example.com:8443/rd');
      const refused = await admin(p, 'PUT', '/routes/ka2', { uri: '/ka2', plugins: { 'key-auth': {} }, upstream_id: 'none' });
      expect(refused.status).toBe(400);
      expect(refused.body.error_msg).toContain('unknown plugin [key-auth]');
      await waitFor(() => gw.peer.output().includes('need a restart'), 5000, 20);
      const log = gw.peer.output();
      expect(log).toMatch(/"keys":\["apisix\.node_listen"\]/);
      expect(log).toMatch(/"applied":\["plugin_attr\.redirect","plugins"\]/);
      // Not applied: the new listener does not exist.
      await expect(get(`http://127.0.0.1:${otherPort}/ka/x`, { timeoutMs: 1000 })).rejects.toThrow();

      // An invalid file: the CLI refuses to signal; a SIGHUP anyway logs the key path and changes nothing.
      const bad = config(p, PLUGINS, 7443);
      bad.apisix.node_listen = 'not-a-port';
      await writeFile(file, stringify(bad));
      const badOut = await runCli(['reload', '-c', file]);
      expect(badOut.code).toBe(1);
      expect(badOut.stderr).toContain('apisix.node_listen');
      const before = gw.peer.output().length;
      process.kill(pid, 'SIGHUP');
      await waitFor(() => gw.peer.output().slice(before).includes('invalid configuration, nothing changed'), 5000, 20);
      expect(gw.peer.output().slice(before)).toContain('apisix.node_listen');
      expect(await count(`http://127.0.0.1:${p.http}/ka/x`, 404, 5)).toBe(5);
      const rd3 = await get(`http://127.0.0.1:${p.http}/rd`, { headers: { host: 'example.com' } });
      expect(rd3.headers.location).toBe('https://example.com:8443/rd');

      // Back to the first list: key-auth is enforced again on the route that kept it.
      await writeFile(file, stringify(config(p, PLUGINS, 9443)));
      expect((await runCli(['reload', '-c', file])).code).toBe(0);
      await served(`http://127.0.0.1:${p.http}/ka/x`, 401);
      expect((await get(`http://127.0.0.1:${p.http}/ka/x`, { headers: { apikey: 'jack-key' } })).status).toBe(200);

      process.kill(pid, 'SIGTERM');
      expect(await gw.exited).toBe(0);
      expect(existsSync(pidFile)).toBe(false);
      const gone = await runCli(['reload', '-c', file]);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toContain('switchyard.pid');
    } finally {
      await cleanup();
    }
  });

  it('with 2 workers, every worker applies the reload', async () => {
    const { dir, cleanup } = await tempDir('swy-reload-w-');
    try {
      const p = await ports();
      const file = await writeConfig(dir, config(p, PLUGINS, 9443, 2));
      const gw = await startCli(file, p.status);
      await waitFor(async () => (await get(`http://127.0.0.1:${p.status}/status/ready`)).status === 200, 30_000, 50);
      await setup(p);
      await waitFor(async () => (await count(`http://127.0.0.1:${p.http}/ka/x`, 401, 10)) === 10, 10_000, 50);

      await writeFile(file, stringify(config(p, ['redirect'], 9443, 2)));
      expect((await runCli(['reload', '-c', file])).code).toBe(0);
      // Fresh connections land on either worker: on every one the route using key-auth is gone.
      await waitFor(async () => (await count(`http://127.0.0.1:${p.http}/ka/x`, 404, 20)) === 20, 10_000, 50);
      expect(await count(`http://127.0.0.1:${p.http}/ka/x`, 404, 20)).toBe(20);
      // Still one primary and the same workers: nothing restarted.
      expect(gw.peer.output()).not.toContain('worker exited');
    } finally {
      await cleanup();
    }
  });
});
