// HTTP/2 rapid reset (issue 20, defect 4) against a gateway running as its own process (bin/switchyard.mjs,
// standalone apisix.yaml, h2c on the plain listener), so its resident memory can be read from /proc.
// - One session flooding HEADERS + RST_STREAM in batches of 100 is ended with GOAWAY ENHANCE_YOUR_CALM (11),
//   and its cancelled streams stay cancelled upstream.
// - Four attackers reconnecting for 3 s (every session must end with a server GOAWAY: 11, or node's own
//   INTERNAL_ERROR when its rejected-stream limit comes first, see below) while another client (its own
//   process) keeps requesting: its latency before and during the flood and the gateway's RSS before,
//   at the peak during, and after the flood are printed; the assertions are loose (all of the other client's
//   requests succeed, RSS growth under a generous bound; its latency is printed, not asserted). The previous
//   build doubled worker memory (163 -> 400 MB) and kept it; other clients saw up to 2.96 s.
// - A slower flood, under nghttp2's own rate limit, hits the gateway's reset budget (GOAWAY 11 as well).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { freePort } from '../helpers/ports.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';

const ENHANCE_YOUR_CALM = http2.constants.NGHTTP2_ENHANCE_YOUR_CALM;
const MB = 1024 * 1024;

let child: ChildProcess;
let output = '';
let upstream: http.Server;
let base = '';
let seen = 0;
let cleanup: () => Promise<void> = async () => undefined;

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    if (req.url?.startsWith('/flood') || req.url?.startsWith('/slow-flood')) {
      seen++;
      // Slow enough that a cancelled stream is still in flight when its reset arrives.
      setTimeout(() => res.end('ok'), 50);
    } else res.end('ok');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const t = await tempDir('swy-h2rr-');
  cleanup = t.cleanup;
  const [port, statusPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const conf = {
    apisix: { node_listen: [{ ip: '127.0.0.1', port }], status: { ip: '127.0.0.1', port: statusPort }, enable_control: false },
    deployment: { role: 'data_plane', role_data_plane: { config_provider: 'yaml' } },
    switchyard: { worker_processes: 1, access_log: { enable: false } },
    plugin_attr: { prometheus: { export_addr: { ip: '127.0.0.1', port: metricsPort } } },
  };
  const routes = { routes: [{ id: 'r', uri: '/*', upstream: { nodes: { [`127.0.0.1:${(upstream.address() as AddressInfo).port}`]: 1 } } }] };
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
  await new Promise((r) => upstream?.close(r));
  await cleanup();
});

async function rss(): Promise<number> {
  const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
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
 * Another client in its own process (the attackers' work in this one must not delay it): sequential GETs on
 * one h2 session for `ms` milliseconds; latencies in ms and failures.
 */
const OTHER_CLIENT = `
const http2 = require('node:http2');
const [base, ms] = [process.argv[1], Number(process.argv[2])];
const out = { ms: [], failed: [] };
const session = http2.connect(base);
session.on('error', (e) => out.failed.push('session: ' + e.message));
const one = () => new Promise((resolve) => {
  const t0 = performance.now();
  const s = session.request({ ':path': '/fine' });
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

function otherClient(ms: number): Promise<{ ms: number[]; failed: string[] }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', OTHER_CLIENT, base, String(ms)], { stdio: ['ignore', 'pipe', 'pipe'] });
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
  const before = seen;
  const s = await floodSession(20);
  // Let any request that escaped its reset reach the upstream before counting.
  await new Promise((r) => setTimeout(r, 200));
  console.log(`rapid reset: ${s.sent} streams sent before the server ended the session (GOAWAY code ${s.code}); upstream saw ${seen - before}`);
  expect(s.code).toBe(ENHANCE_YOUR_CALM);
  expect(s.sent).toBeLessThan(2000);
  // Cancelled streams are cancelled upstream too: the previous build let 12 % of them through.
  expect(seen - before).toBeLessThanOrEqual(Math.ceil(s.sent * 0.01));
});

it('attackers reconnecting for 3 s: every session gets a server GOAWAY, another client is served, memory stays bounded', async () => {
  // Baseline: the other client alone for 1.5 s (its first requests warm the route up), RSS after it.
  const baseline = await otherClient(1500);
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
  const upBefore = seen;
  const until = Date.now() + 3000;
  const [during] = await Promise.all([
    otherClient(3000),
    ...Array.from({ length: 4 }, async () => {
      while (Date.now() < until) sessions.push(await floodSession(20));
    }),
  ]);
  sampling = false;
  await sampler;
  await new Promise((r) => setTimeout(r, 1500));
  const rssAfter = await rss();

  const sorted = (a: number[]) => [...a].sort((x, y) => x - y);
  const b = sorted(baseline.ms);
  const d = sorted(during.ms);
  const sent = sessions.reduce((n, s) => n + s.sent, 0);
  const codes = new Map<number, number>();
  for (const s of sessions) codes.set(s.code, (codes.get(s.code) ?? 0) + 1);
  const f = (x: number) => x.toFixed(1);
  console.log(
    `rapid reset, 4 attackers x 3 s: ${sessions.length} sessions, ${sent} streams, GOAWAY codes ${JSON.stringify(Object.fromEntries(codes))}, ` +
      `upstream saw ${seen - upBefore}\n` +
      `other client: alone ${b.length} req p50 ${f(quantile(b, 0.5))} ms p99 ${f(quantile(b, 0.99))} ms max ${f(b.at(-1) ?? NaN)} ms; ` +
      `during the flood ${d.length} req p50 ${f(quantile(d, 0.5))} ms p99 ${f(quantile(d, 0.99))} ms max ${f(d.at(-1) ?? NaN)} ms, ${during.failed.length} failed\n` +
      `gateway RSS: before ${f(rssBefore / MB)} MB, peak during ${f(peak / MB)} MB, 1.5 s after ${f(rssAfter / MB)} MB (load ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cpus)`,
  );

  expect(sessions.length).toBeGreaterThanOrEqual(4);
  // Every session is ended by the server with a GOAWAY, never by this client giving up or a bare close. Most
  // get the gateway's ENHANCE_YOUR_CALM; when the gateway is starved of CPU, node's own guard can come first:
  // stream objects pile up past maxSessionMemory, new streams are refused, and after maxSessionRejectedStreams
  // refusals node ends the session with INTERNAL_ERROR (nghttp2's answer to a failed callback).
  for (const s of sessions) expect([ENHANCE_YOUR_CALM, http2.constants.NGHTTP2_INTERNAL_ERROR], `a session sent ${s.sent} streams and ended with ${s.code}`).toContain(s.code);
  expect(codes.get(ENHANCE_YOUR_CALM) ?? 0, 'no session got ENHANCE_YOUR_CALM').toBeGreaterThan(0);
  expect(seen - upBefore).toBeLessThanOrEqual(Math.ceil(sent * 0.01));
  expect(during.failed).toEqual([]);
  expect(d.length).toBeGreaterThan(0);
  // The other client's latency during the flood is printed above, not asserted (tests assert no wall-clock
  // times): it is still seconds (3.3 s on 2 cpus at load 2.6 on 2026-12-07, issue 20's 2.96 s not improved), a
  // known open defect reported in the closing note.
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
