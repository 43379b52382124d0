// SIGHUP under load (issue 16): a real 2-worker gateway from the CLI serves four bounded client loops (two on
// keep-alive connections, two on a fresh connection per request) while config.yaml's plugins list is switched
// back and forth and SIGHUP is sent each time. Every request must succeed through the route's plugin
// (proxy-rewrite stays listed in both lists), an upstream request in flight across the reloads completes, and
// afterwards the new list is in effect on every worker: a plugin that was refused before is accepted and runs.
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { admin, baseConfig, get, killAll, ports, startCli, writeConfig, type Ports } from './cli-helpers.ts';

vi.setConfig({ testTimeout: 30_000 });

const BEFORE = ['proxy-rewrite', 'key-auth', 'redirect'];
const AFTER = ['proxy-rewrite', 'key-auth', 'response-rewrite'];
const LOOPS = 4;
const MAX_PER_LOOP = 3000;
const LOAD_MAX_MS = 10_000;

let echo: EchoServer;

beforeAll(async () => {
  echo = await startEcho('reload-load');
});
afterAll(async () => {
  await killAll();
  await echo.close();
});

function config(p: Ports, plugins: string[]): Record<string, any> {
  const conf = baseConfig(p);
  conf.plugins = plugins;
  conf.switchyard.worker_processes = 2;
  return conf;
}

interface Stats {
  requests: number;
  failures: number;
  reasons: string[];
}

/** One request through `agent`; null when it answered 200 from the upstream through proxy-rewrite. */
function probe(url: string, agent: http.Agent | false, wantPath: string): Promise<string | null> {
  return new Promise((resolve) => {
    const req = http.request(url, { agent, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        if (res.statusCode !== 200) return resolve(`status ${res.statusCode}: ${body.slice(0, 200)}`);
        try {
          const echoed = JSON.parse(body) as { url: string; headers: Record<string, string> };
          if (echoed.url !== wantPath || echoed.headers['x-through'] !== 'proxy-rewrite') return resolve(`not rewritten: ${echoed.url}`);
        } catch {
          return resolve(`not the upstream's answer: ${body.slice(0, 200)}`);
        }
        resolve(null);
      });
      res.on('error', (err) => resolve(`response error: ${err.message}`));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve(`request error: ${err.message}`));
    req.end();
  });
}

async function loop(base: string, id: number, keepAlive: boolean, until: { stop: boolean; deadline: number }, stats: Stats): Promise<void> {
  const agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : false;
  try {
    for (let i = 0; i < MAX_PER_LOOP && !until.stop && Date.now() < until.deadline; i++) {
      const failure = await probe(`${base}/load/l${id}-${i}`, agent, `/l${id}-${i}`);
      stats.requests++;
      if (failure !== null) {
        stats.failures++;
        if (stats.reasons.length < 5) stats.reasons.push(failure);
      }
    }
  } finally {
    if (agent) agent.destroy();
  }
}

describe('SIGHUP under load', () => {
  it('zero failed requests across plugin-list reloads on 2 workers; the new list is in effect afterwards', async () => {
    const { dir, cleanup } = await tempDir('swy-reload-load-');
    try {
      const p = await ports();
      const file = await writeConfig(dir, config(p, BEFORE));
      const gw = await startCli(file, p.status, { SWITCHYARD_LOG_LEVEL: 'info' });
      await waitFor(async () => (await get(`http://127.0.0.1:${p.status}/status/ready`)).status === 200, 20_000, 50);
      const pid = Number((await readFile(path.join(dir, 'logs', 'switchyard.pid'), 'utf8')).trim());
      const base = `http://127.0.0.1:${p.http}`;

      const up = { type: 'roundrobin', nodes: { [echo.addr]: 1 } };
      const loadRoute = {
        uri: '/load/*',
        plugins: { 'proxy-rewrite': { regex_uri: ['^/load/(.*)', '/$1'], headers: { set: { 'x-through': 'proxy-rewrite' } } } },
        upstream: up,
      };
      expect((await admin(p, 'PUT', '/routes/load', loadRoute)).status).toBe(201);
      const rrRoute = { uri: '/rr', plugins: { 'response-rewrite': { headers: { set: { 'x-reloaded': 'yes' } } } }, upstream: up };
      const refused = await admin(p, 'PUT', '/routes/rr', rrRoute);
      expect(refused.status).toBe(400);
      expect(refused.body.error_msg).toContain('unknown plugin [response-rewrite]');
      // Both workers serve the route before the load starts (fresh connections spread over the workers).
      await waitFor(async () => {
        for (let i = 0; i < 10; i++) if ((await probe(`${base}/load/warm`, false, '/warm')) !== null) return false;
        return true;
      }, 10_000, 50);

      const stats: Stats = { requests: 0, failures: 0, reasons: [] };
      const until = { stop: false, deadline: Date.now() + LOAD_MAX_MS };
      const loops = Array.from({ length: LOOPS }, (_, i) => loop(base, i, i % 2 === 0, until, stats));
      // An upstream exchange in flight across every reload below.
      const slow = probe(`${base}/load/delay/2500`, false, '/delay/2500');

      const logStart = gw.peer.output().length;
      const lists = [AFTER, BEFORE, AFTER, BEFORE, AFTER];
      for (const list of lists) {
        await new Promise((r) => setTimeout(r, 350));
        await writeFile(file, stringify(config(p, list)));
        process.kill(pid, 'SIGHUP');
      }
      await waitFor(() => gw.peer.output().slice(logStart).includes('reload: done'), 10_000, 20);
      await new Promise((r) => setTimeout(r, 500));
      until.stop = true;
      await Promise.all(loops);
      const slowResult = await slow;

      expect(stats.reasons).toEqual([]);
      expect(stats.failures).toBe(0);
      // Load really ran during the reloads (loose: the VM's speed varies a lot).
      expect(stats.requests).toBeGreaterThan(LOOPS * 10);
      expect(slowResult).toBeNull();

      // The last list (AFTER) is in effect: listed in the Admin API, and the route refused before is accepted
      // and its plugin runs on every worker.
      const list = await admin(p, 'GET', '/plugins/list');
      expect(list.body).toContain('response-rewrite');
      expect(list.body).not.toContain('redirect');
      expect((await admin(p, 'PUT', '/routes/rr', rrRoute)).status).toBe(201);
      await waitFor(async () => {
        for (let i = 0; i < 10; i++) if ((await get(`${base}/rr`)).headers['x-reloaded'] !== 'yes') return false;
        return true;
      }, 10_000, 50);
      for (let i = 0; i < 10; i++) expect((await get(`${base}/rr`)).headers['x-reloaded']).toBe('yes');
      expect(gw.peer.output()).not.toContain('worker exited');
      expect(gw.peer.output().slice(logStart)).not.toContain('reload failed');
    } finally {
      await cleanup();
    }
  });
});
