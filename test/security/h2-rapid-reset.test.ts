// HTTP/2 rapid reset (issue 20, defect 4) against a gateway running as its own process (bin/switchyard.mjs,
// standalone apisix.yaml, h2c on the plain listener), so its resident memory and cpu time can be read from /proc.
// The upstream and the other clients run in their own processes as well: this process runs the attackers, and
// whatever shared its event loop would wait for them instead of for the gateway.
// - One session flooding HEADERS + RST_STREAM in batches of 100 is ended with GOAWAY ENHANCE_YOUR_CALM (11),
//   and its cancelled streams stay cancelled upstream.
// - Four attackers reconnecting for 3 s (every session must end with a server GOAWAY: 11, or node's own
//   INTERNAL_ERROR when its rejected-stream limit comes first, see below) while two other clients keep
//   requesting, one a proxied route, one a route the gateway answers itself (fault-injection abort). Printed:
//   their latency alone and during the flood, the gateway's cpu time during the flood (and how long its main
//   thread waited for a cpu) against this process's (the attackers'), the gateway's RSS before, at the peak
//   during and after the flood. The assertions are loose: every request of the other clients succeeds, RSS
//   growth stays under a generous bound; latencies are printed, never asserted.
//   Issue 20 reported other clients waiting up to 2.96 s and a worker doubling its memory (163 -> 400 MB) for
//   good. This test on 2 cpus shared with other work (load 8-9, 2026-12-07, the previous listener and this one
//   interleaved, two runs each): the proxied client's worst request during the flood went from 2.7-3.3 s
//   (1-4 requests served in 3 s) to 0.31-0.34 s (56-85 served), the locally answered one's from 1.2-2.0 s to
//   0.26-0.30 s, and the gateway now spends less cpu than the attackers (0.6-0.7 s against 0.9-1.1 s; before,
//   0.9-1.1 s against 0.7-1.0 s). The rest is mostly the machine: the gateway's main thread waited about 2 s
//   of the 3 for a cpu.
// - A slower flood, under nghttp2's own rate limit, hits the gateway's reset budget (GOAWAY 11 as well).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { freePort } from '../helpers/ports.ts';
import { startPeer, tempDir, waitFor, type Peer } from '../helpers/proc.ts';

const ENHANCE_YOUR_CALM = http2.constants.NGHTTP2_ENHANCE_YOUR_CALM;
const MB = 1024 * 1024;

let child: ChildProcess;
let output = '';
let upstream: Peer | undefined;
let upstreamPort = 0;
let base = '';
let cleanup: () => Promise<void> = async () => undefined;

/**
 * The upstream, in its own process: flood requests are counted (GET /count reads the count) and answered after
 * 50 ms, slow enough that a cancelled stream is still in flight when its reset arrives; others at once.
 */
const UPSTREAM = `
const http = require('node:http');
let seen = 0;
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/flood') || req.url.startsWith('/slow-flood')) { seen++; setTimeout(() => res.end('ok'), 50); }
  else if (req.url === '/count') res.end(String(seen));
  else res.end('ok');
});
server.listen(0, '127.0.0.1', () => process.stdout.write('port ' + server.address().port + '\\n'));
`;

beforeAll(async () => {
  const up = (upstream = startPeer(process.execPath, ['-e', UPSTREAM]));
  await waitFor(() => /port \d+/.test(up.output()), 10_000, 20);
  upstreamPort = Number(/port (\d+)/.exec(up.output())![1]);
  const t = await tempDir('swy-h2rr-');
  cleanup = t.cleanup;
  const [port, statusPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const conf = {
    apisix: { node_listen: [{ ip: '127.0.0.1', port }], status: { ip: '127.0.0.1', port: statusPort }, enable_control: false },
    deployment: { role: 'data_plane', role_data_plane: { config_provider: 'yaml' } },
    switchyard: { worker_processes: 1, access_log: { enable: false } },
    plugin_attr: { prometheus: { export_addr: { ip: '127.0.0.1', port: metricsPort } } },
  };
  const routes = {
    routes: [
      { id: 'local', uri: '/local', plugins: { 'fault-injection': { abort: { http_status: 200, body: 'ok' } } } },
      { id: 'r', uri: '/*', upstream: { nodes: { [`127.0.0.1:${upstreamPort}`]: 1 } } },
    ],
  };
  const configFile = path.join(t.dir, 'config.yaml');
  await writeFile(configFile, stringify(conf));
  await writeFile(path.join(t.dir, 'apisix.yaml'), stringify(routes) + '#END\n');
  child = spawn(process.execPath, ['bin/switchyard.mjs', 'start', '-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (output = (output + d).slice(-20_000)));
  child.stderr!.on('data', (d) => (output = (output + d).slice(-20_000)));
  base = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    const s = http2.connect(base);
    s.on('error', () => undefined);
    try {
      return (await get(s, '/ready')).status === 200;
    } catch {
      return false;
    } finally {
      s.close();
    }
  }, 20_000, 100).catch((err: Error) => {
    throw new Error(`${err.message}\n${output}`);
  });
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
  await upstream?.stop();
  await cleanup();
});

async function rss(): Promise<number> {
  const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** The gateway's cpu seconds (all threads), and its main thread's seconds on a cpu and waiting for one. */
async function gatewayCpu(): Promise<{ cpu: number; ran: number; waited: number }> {
  const stat = (await readFile(`/proc/${child.pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  const sched = (await readFile(`/proc/${child.pid}/task/${child.pid}/schedstat`, 'utf8')).split(' ');
  // utime and stime (fields 14 and 15) are in clock ticks, 100 per second on Linux.
  return { cpu: (Number(stat[11]) + Number(stat[12])) / 100, ran: Number(sched[0]) / 1e9, waited: Number(sched[1]) / 1e9 };
}

/** Flood requests the upstream has seen so far. */
function upstreamSeen(): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(`http://127.0.0.1:${upstreamPort}/count`, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(Number(body)));
      })
      .on('error', reject);
  });
}

function get(client: http2.ClientHttp2Session, p: string): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const s = client.request({ ':path': p });
    s.on('response', (h) => {
      s.resume();
      s.on('end', () => resolve({ status: Number(h[':status']), ms: performance.now() - t0 }));
    });
    s.on('error', reject);
  });
}

interface Session {
  sent: number;
  /** The GOAWAY code the server sent, or -1 when the session closed without one. */
  code: number;
}

/** One attacker session: HEADERS then RST_STREAM(CANCEL), batches of 100, 20 ms apart, until the server ends it. */
async function floodSession(maxBatches: number): Promise<Session> {
  const attacker = http2.connect(base);
  attacker.on('error', () => undefined);
  let code = -1;
  attacker.once('goaway', (c) => (code = c));
  const closed = new Promise<void>((resolve) => attacker.once('close', () => resolve()));
  let sent = 0;
  for (let batch = 0; batch < maxBatches && !attacker.destroyed && !attacker.closed; batch++) {
    for (let i = 0; i < 100; i++) {
      if (attacker.destroyed || attacker.closed) break;
      try {
        const s = attacker.request({ ':path': `/flood/${sent}` });
        s.on('error', () => undefined);
        s.close(http2.constants.NGHTTP2_CANCEL);
        sent++;
      } catch {
        break;
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  // A loaded gateway reads the flood late: its GOAWAY may come well after the last batch was written.
  const timer = setTimeout(() => attacker.destroy(), 10_000);
  await closed;
  clearTimeout(timer);
  return { sent, code };
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

/**
 * Another client in its own process (the attackers' work in this one must not delay it): sequential GETs of
 * one path on one h2 session for `ms` milliseconds; latencies in ms and failures.
 */
const OTHER_CLIENT = `
const http2 = require('node:http2');
const [base, path, ms] = [process.argv[1], process.argv[2], Number(process.argv[3])];
const out = { ms: [], failed: [] };
const session = http2.connect(base);
session.on('error', (e) => out.failed.push('session: ' + e.message));
const one = () => new Promise((resolve) => {
  const t0 = performance.now();
  const s = session.request({ ':path': path });
  s.on('response', (h) => { s.resume(); s.on('end', () => { if (h[':status'] === 200) out.ms.push(performance.now() - t0); else out.failed.push('status ' + h[':status']); resolve(); }); });
  s.on('error', (e) => { out.failed.push(e.message); resolve(); });
});
(async () => {
  const until = Date.now() + ms;
  while (Date.now() < until) { await one(); await new Promise((r) => setTimeout(r, 10)); }
  session.close();
  process.stdout.write(JSON.stringify(out));
})();
`;

function otherClient(route: string, ms: number): Promise<{ ms: number[]; failed: string[] }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', OTHER_CLIENT, base, route, String(ms)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('exit', (code) => {
      try {
        resolve(JSON.parse(out) as { ms: number[]; failed: string[] });
      } catch {
        reject(new Error(`other client exited ${code}: ${err}${out}`));
      }
    });
  });
}

it('a reset flood ends the session with GOAWAY ENHANCE_YOUR_CALM and stays bounded upstream', async () => {
  const before = await upstreamSeen();
  const s = await floodSession(20);
  // Let any request that escaped its reset reach the upstream before counting.
  await new Promise((r) => setTimeout(r, 200));
  const seen = (await upstreamSeen()) - before;
  console.log(`rapid reset: ${s.sent} streams sent before the server ended the session (GOAWAY code ${s.code}); upstream saw ${seen}`);
  expect(s.code).toBe(ENHANCE_YOUR_CALM);
  expect(s.sent).toBeLessThan(2000);
  // Cancelled streams are cancelled upstream too: the previous build let 12 % of them through.
  expect(seen).toBeLessThanOrEqual(Math.ceil(s.sent * 0.01));
});

it('attackers reconnecting for 3 s: every session gets a server GOAWAY, other clients are served, memory stays bounded', async () => {
  // Baseline: the other clients alone for 1.5 s (their first requests warm the routes up), RSS after it.
  const baseline = await Promise.all([otherClient('/fine', 1500), otherClient('/local', 1500)]);
  const rssBefore = await rss();

  let peak = rssBefore;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await rss());
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const sessions: Session[] = [];
  const upBefore = await upstreamSeen();
  const cpuBefore = await gatewayCpu();
  const ownCpu = process.cpuUsage();
  const until = Date.now() + 3000;
  const [proxied, local] = await Promise.all([
    otherClient('/fine', 3000),
    otherClient('/local', 3000),
    ...Array.from({ length: 4 }, async () => {
      while (Date.now() < until) sessions.push(await floodSession(20));
    }),
  ]);
  const own = process.cpuUsage(ownCpu);
  const cpuAfter = await gatewayCpu();
  sampling = false;
  await sampler;
  await new Promise((r) => setTimeout(r, 1500));
  const rssAfter = await rss();
  const upSeen = (await upstreamSeen()) - upBefore;

  const sent = sessions.reduce((n, s) => n + s.sent, 0);
  const codes = new Map<number, number>();
  for (const s of sessions) codes.set(s.code, (codes.get(s.code) ?? 0) + 1);
  const f = (x: number) => x.toFixed(1);
  const latency = (r: { ms: number[] }) => {
    const a = [...r.ms].sort((x, y) => x - y);
    return `${a.length} req p50 ${f(quantile(a, 0.5))} ms p99 ${f(quantile(a, 0.99))} ms max ${f(a.at(-1) ?? NaN)} ms`;
  };
  console.log(
    `rapid reset, 4 attackers x 3 s: ${sessions.length} sessions, ${sent} streams, GOAWAY codes ${JSON.stringify(Object.fromEntries(codes))}, ` +
      `upstream saw ${upSeen}\n` +
      `other client, proxied route: alone ${latency(baseline[0])}; during the flood ${latency(proxied)}, ${proxied.failed.length} failed\n` +
      `other client, route answered by the gateway: alone ${latency(baseline[1])}; during the flood ${latency(local)}, ${local.failed.length} failed\n` +
      `cpu during the flood: gateway ${(cpuAfter.cpu - cpuBefore.cpu).toFixed(2)} s (main thread ran ${(cpuAfter.ran - cpuBefore.ran).toFixed(2)} s, ` +
      `waited for a cpu ${(cpuAfter.waited - cpuBefore.waited).toFixed(2)} s), this process (the attackers) ${((own.user + own.system) / 1e6).toFixed(2)} s\n` +
      `gateway RSS: before ${f(rssBefore / MB)} MB, peak during ${f(peak / MB)} MB, 1.5 s after ${f(rssAfter / MB)} MB (load ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cpus)`,
  );

  expect(sessions.length).toBeGreaterThanOrEqual(4);
  // Every session is ended by the server with a GOAWAY, never by this client giving up or a bare close. Most
  // get the gateway's ENHANCE_YOUR_CALM; when the gateway is starved of CPU, node's own guard can come first:
  // stream objects pile up past maxSessionMemory, new streams are refused, and after maxSessionRejectedStreams
  // refusals node ends the session with INTERNAL_ERROR (nghttp2's answer to a failed callback).
  for (const s of sessions) expect([ENHANCE_YOUR_CALM, http2.constants.NGHTTP2_INTERNAL_ERROR], `a session sent ${s.sent} streams and ended with ${s.code}`).toContain(s.code);
  expect(codes.get(ENHANCE_YOUR_CALM) ?? 0, 'no session got ENHANCE_YOUR_CALM').toBeGreaterThan(0);
  expect(upSeen).toBeLessThanOrEqual(Math.ceil(sent * 0.01));
  expect(proxied.failed).toEqual([]);
  expect(local.failed).toEqual([]);
  expect(proxied.ms.length).toBeGreaterThan(0);
  expect(local.ms.length).toBeGreaterThan(0);
  // Generous: the previous build went from 163 to 400 MB (+237) and stayed there.
  expect(peak - rssBefore).toBeLessThan(200 * MB);
  expect(rssAfter - rssBefore).toBeLessThan(150 * MB);
}, 60_000);

it('a slower reset flood (under the nghttp2 rate limit) hits the gateway reset budget', async () => {
  const attacker = http2.connect(base);
  attacker.on('error', () => undefined);
  const goaway = new Promise<number>((resolve) => attacker.once('goaway', (code) => resolve(code)));
  const closed = new Promise<void>((resolve) => attacker.once('close', () => resolve()));
  let sent = 0;
  // Bounded: at most 30 rounds of 10 streams, 60 ms apart (under 2 s).
  for (let round = 0; round < 30 && !attacker.destroyed && !attacker.closed; round++) {
    for (let i = 0; i < 10; i++) {
      try {
        const s = attacker.request({ ':path': `/slow-flood/${sent}` });
        s.on('error', () => undefined);
        s.close(http2.constants.NGHTTP2_CANCEL);
        sent++;
      } catch {
        break;
      }
    }
    await new Promise((r) => setTimeout(r, 60));
  }
  const code = await Promise.race([goaway, closed.then(() => -1)]);
  attacker.destroy();
  console.log(`slow reset flood: ${sent} streams sent, session ended with code ${code}`);
  expect(code).toBe(ENHANCE_YOUR_CALM);
  expect(sent).toBeLessThan(300);
});
