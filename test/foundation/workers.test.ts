// worker_processes 2 through the CLI: both workers hold the shared listening socket and each follows config
// changes on its own; a crashed worker is replaced; readiness tracks the workers; no request fails during config
// changes; SIGTERM on the primary drains in-flight requests on every worker and exits 0.
import { readFile, readdir, readlink, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { admin, baseConfig, get, ports, served, startCli, writeConfig, type Gw, type Ports, killAll } from './cli-helpers.ts';

// Each test spawns the CLI (a cold Node start loading the TypeScript sources); generous on a loaded machine.
vi.setConfig({ testTimeout: 60_000 });

let echoA: EchoServer;
let echoB: EchoServer;
let p: Ports;
let gw: Gw;
let dir: string;
let cleanup: () => Promise<void>;

async function workers(): Promise<number[]> {
  const text = await readFile(`/proc/${gw.peer.pid}/task/${gw.peer.pid}/children`, 'utf8').catch(() => '');
  return text.split(/\s+/).filter((s) => s !== '').map(Number);
}

/** Inode of the LISTEN socket on 127.0.0.1:port, from /proc/net/tcp. */
async function listenInode(port: number): Promise<string> {
  const lines = (await readFile('/proc/net/tcp', 'utf8')).split('\n').slice(1);
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const l of lines) {
    const f = l.trim().split(/\s+/);
    if (f[1] === local && f[3] === '0A') return f[9]!;
  }
  throw new Error(`no listener on ${port}`);
}

async function holdsSocket(pid: number, inode: string): Promise<boolean> {
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    if (target === `socket:[${inode}]`) return true;
  }
  return false;
}

const ready = async () => (await get(`http://127.0.0.1:${p.status}/status/ready`)).status;
const url = (u: string) => `http://127.0.0.1:${p.http}${u}`;
const routeTo = (uri: string, e: EchoServer) => ({ uri, upstream: { type: 'roundrobin', nodes: { [e.addr]: 1 } } });

/** Runs `fn` with every worker but `pid` stopped (SIGSTOP), so each new connection lands on `pid`. */
async function only<T>(pid: number, fn: () => Promise<T>): Promise<T> {
  const others = (await workers()).filter((w) => w !== pid);
  for (const w of others) process.kill(w, 'SIGSTOP');
  try {
    return await fn();
  } finally {
    for (const w of others) process.kill(w, 'SIGCONT');
  }
}

beforeAll(async () => {
  echoA = await startEcho('A');
  echoB = await startEcho('B');
  ({ dir, cleanup } = await tempDir('swy-workers-'));
  p = await ports();
  const conf = baseConfig(p);
  conf.switchyard.worker_processes = 2;
  gw = await startCli(await writeConfig(dir, conf), p.status);
  await waitFor(async () => (await ready()) === 200, 20_000, 50);
});

afterAll(async () => {
  const left = gw ? await workers() : [];
  await killAll();
  for (const w of left) {
    try {
      process.kill(w, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await echoA?.close();
  await echoB?.close();
  await cleanup?.();
});

describe('worker_processes: 2', () => {
  it('runs two workers that share the listening socket', async () => {
    const pids = await workers();
    expect(pids).toHaveLength(2);
    const inode = await listenInode(p.http);
    for (const pid of pids) expect(await holdsSocket(pid, inode)).toBe(true);
  });

  it('every worker serves an Admin API write on its own', async () => {
    expect((await admin(p, 'PUT', '/routes/w', routeTo('/w', echoA))).status).toBe(201);
    for (const pid of await workers()) {
      await only(pid, async () => {
        await served(url('/w'));
        for (let i = 0; i < 5; i++) expect(JSON.parse((await get(url('/w'))).body).server).toBe('A');
      });
    }
  }, 60_000);

  it('no request fails while the route in use is rewritten repeatedly', async () => {
    let stop = false;
    let count = 0;
    const failures: string[] = [];
    const client = (async () => {
      for (let i = 0; i < 2000 && !stop; i++) {
        try {
          const r = await get(url('/w'));
          if (r.status !== 200) failures.push(`status ${r.status}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
        count++;
      }
    })();
    for (let i = 0; i < 20; i++) {
      const r = await admin(p, 'PUT', '/routes/w', routeTo('/w', i % 2 === 0 ? echoB : echoA));
      expect(r.status).toBe(200);
      await admin(p, 'PUT', `/routes/churn${i}`, routeTo(`/churn${i}`, echoA));
    }
    stop = true;
    await client;
    expect(failures).toEqual([]);
    expect(count).toBeGreaterThan(0);
  }, 60_000);

  it('replaces a crashed worker; clients see no failure beyond the killed worker\'s own connections', async () => {
    const before = await workers();
    let stop = false;
    const failures: string[] = [];
    const client = (async () => {
      for (let i = 0; i < 5000 && !stop; i++) {
        // A connection accepted by the killed worker may be reset; one retry goes to a live worker.
        let r = await get(url('/w')).catch(() => null);
        r ??= await get(url('/w')).catch((err: Error) => ({ status: 0, body: err.message, headers: {} }));
        if (r.status !== 200) failures.push(`${r.status} ${r.body}`);
      }
    })();
    process.kill(before[0]!, 'SIGKILL');
    const after: number[] = (await waitFor(async () => {
      const now = await workers();
      return now.length === 2 && !now.includes(before[0]!) ? now : undefined;
    }, 20_000, 50))!;
    expect(after).toContain(before[1]);
    await waitFor(async () => (await ready()) === 200, 20_000, 50);
    stop = true;
    await client;
    expect(failures).toEqual([]);
    const fresh = after.find((w) => w !== before[1])!;
    await only(fresh, async () => served(url('/w')));
  }, 60_000);

  it('/status/ready is 503 while a worker cannot load its configuration, 200 once it can', async () => {
    const file = path.join(dir, 'apisix.yaml');
    const good = await readFile(file, 'utf8');
    // Without #END a starting worker cannot load the file; the running primary keeps its last good view.
    await writeFile(`${file}.tmp`, good.replace(/#END\s*$/, ''));
    await rename(`${file}.tmp`, file);
    for (const w of await workers()) process.kill(w, 'SIGKILL');
    await waitFor(async () => (await ready()) === 503, 20_000, 20);
    expect((await get(`http://127.0.0.1:${p.status}/status`)).status).toBe(200);
    await writeFile(`${file}.tmp`, good);
    await rename(`${file}.tmp`, file);
    await waitFor(async () => (await ready()) === 200, 30_000, 50);
    await served(url('/w'));
  }, 60_000);

  it('SIGTERM on the primary drains in-flight requests on every worker and exits 0', async () => {
    expect((await admin(p, 'PUT', '/routes/slow', routeTo('/delay/*', echoA))).status).toBe(201);
    const pids = await workers();
    await served(url('/delay/1'));
    const seen = echoA.seen.length;
    const inflight: Promise<{ status: number }>[] = [];
    for (const pid of pids) {
      await only(pid, async () => {
        const n = echoA.seen.length;
        inflight.push(get(url('/delay/1500')));
        await waitFor(() => echoA.seen.length > n, 10_000, 10);
      });
    }
    expect(echoA.seen.length).toBe(seen + pids.length);
    process.kill(gw.peer.pid, 'SIGTERM');
    const results = await Promise.all(inflight);
    expect(results.map((r) => r.status)).toEqual(pids.map(() => 200));
    expect(await gw.exited).toBe(0);
    await waitFor(async () => {
      for (const w of pids) {
        try {
          process.kill(w, 0);
          return false;
        } catch {
          /* gone */
        }
      }
      return true;
    }, 10_000, 50);
  }, 60_000);
});
