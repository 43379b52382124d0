// Memory per idle connection, attributed: for each target a fresh gateway process (one worker) is started with
// the GC probe preloaded (bench/lib/gc-probe.ts), warmed with 200 connections, then holds `--count` idle
// connections opened by a separate client process (bench/peers: HTTP keep-alive after one GET of a 1 KB answer,
// or MQTT sessions after CONNECT/CONNACK through an mqtt-proxy stream route to mosquitto). Per connection it
// reports the RSS delta without a forced GC (what a process holds at a random moment: garbage included), and
// after a memory-reducing full GC inside the process (what the memory scenario reports) the RSS, V8 heap used,
// external (ArrayBuffers, native parser buffers) and "other" (RSS - heap total - external: malloc'd native state
// such as libuv handles, plus allocator slack). With --snapshot it takes V8 heap snapshots before and with the
// connections (those readings are not comparable to a run without it: a snapshot grows RSS) and prints the
// object groups whose self size grew, per connection.
//
//   node_modules/.bin/node bench/conn-memory.ts [--count 2000] [--targets socket,node,mqtt] [--rounds 1] [--snapshot] [--base <dir>]
// --rounds N opens and closes the same number of connections N - 1 more times on the same process: whether the
// memory kept after the first close is reused (a steady RSS) or grows with every round.
// --base names another checkout (e.g. a `git worktree` of the previous commit): each target is then measured on
// that build and on this one, one after the other, for before/after figures from one run.
import http from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from '../test/helpers/ports.ts';
import { waitFor } from '../test/helpers/proc.ts';
import { route, startGateway, type GatewayService } from './lib/gateway.ts';
import { Probe, probeEnv } from './lib/gc-probe.ts';
import { startMosquitto } from './lib/mosquitto.ts';
import { processTree, sampleTree } from './lib/procfs.ts';
import { fdHardLimit, spawnService, type Service } from './lib/service.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WARMUP = 200;

type Target = 'socket' | 'node' | 'mqtt';

interface Reading {
  /** RSS without forcing a GC (median of samples), then after the probe's GC. */
  rss: number;
  rssGc: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function rssOf(pid: number): number {
  return sampleTree(processTree(pid)).rssBytes;
}

async function medianRss(pid: number, samples = 3): Promise<number> {
  const v: number[] = [];
  for (let i = 0; i < samples; i++) {
    if (i > 0) await sleep(300);
    v.push(rssOf(pid));
  }
  v.sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)]!;
}

async function reading(probe: Probe, settleMs: number): Promise<Reading> {
  await sleep(settleMs);
  const rss = await medianRss(probe.pid);
  const m = await probe.collect();
  // Freed V8 pages are unmapped by a background thread after the GC returns.
  await sleep(1000);
  return { rss, rssGc: await medianRss(probe.pid), heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers };
}

async function openClients(kind: 'http' | 'mqtt', port: number, count: number, tag: string): Promise<{ svc: Service; connected: number }> {
  const script = path.join(HERE, 'peers', kind === 'http' ? 'http-idle.ts' : 'mqtt-idle.ts');
  const svc = spawnService(`idle-${tag}`, process.execPath, [script, String(port), String(count), tag], { env: { ...process.env, NODE_ENV: 'production' } });
  const m = await waitFor(() => {
    if (!svc.alive()) throw new Error(`idle client exited: ${svc.output().slice(-2000)}`);
    return /connected (\d+) failed (\d+)/.exec(svc.output());
  }, 180_000, 100);
  if (Number(m![2]) > 0) console.log(`  ${tag}: ${m![2]} connections failed`);
  return { svc, connected: Number(m![1]) };
}

/** 1 KB answers with content-length, kept alive: the upstream of the HTTP targets. */
async function startUpstream(): Promise<{ port: number; close(): void }> {
  const body = Buffer.alloc(1024, 'x');
  const srv = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  });
  const port = await freePort();
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
  return { port, close: () => srv.close() };
}

async function startTarget(t: Target, dir: string, upstreamPort: number, brokerPort: number, root: string | undefined): Promise<{ gw: GatewayService; port: number; probe: Probe }> {
  const probeDir = path.join(dir, 'probe');
  const env = probeEnv(probeDir);
  if (t === 'mqtt') {
    const streamPort = await freePort();
    const mqttRoute = {
      id: 'mqtt',
      server_port: streamPort,
      plugins: { 'mqtt-proxy': { protocol_name: 'MQTT', protocol_level: 4 } },
      upstream: { type: 'chash', key: 'mqtt_client_id', nodes: { [`127.0.0.1:${brokerPort}`]: 1 } },
    };
    const gw = await startGateway({ dir: path.join(dir, 'gw'), root, env, streamPorts: [streamPort], standalone: { routes: [], stream_routes: [mqttRoute] }, switchyard: { http1_engine: 'socket' } });
    return { gw, port: streamPort, probe: new Probe(probeDir, gw.pid) };
  }
  const gw = await startGateway({ dir: path.join(dir, 'gw'), root, env, standalone: { routes: [route('1', '/*', upstreamPort)] }, switchyard: { http1_engine: t } });
  return { gw, port: gw.port, probe: new Probe(probeDir, gw.pid) };
}

// Heap snapshot aggregation -------------------------------------------------------------------------------------

interface Group {
  count: number;
  bytes: number;
}

async function aggregate(file: string): Promise<Map<string, Group>> {
  const snap = JSON.parse(await readFile(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const f = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = f.length;
  const iType = f.indexOf('type');
  const iName = f.indexOf('name');
  const iSize = f.indexOf('self_size');
  const out = new Map<string, Group>();
  const nodes = snap.nodes;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + iType]!]!;
    let name = snap.strings[nodes[i + iName]!]!;
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '';
    else if (type === 'code') name = '';
    else if (type === 'closure') name = name.length > 40 ? name.slice(0, 40) : name;
    else if (name.length > 60) name = name.slice(0, 60);
    const key = `${type}: ${name}`;
    const g = out.get(key);
    if (g === undefined) out.set(key, { count: 1, bytes: nodes[i + iSize]! });
    else {
      g.count++;
      g.bytes += nodes[i + iSize]!;
    }
  }
  return out;
}

function diffGroups(a: Map<string, Group>, b: Map<string, Group>, n: number): string[] {
  const rows: { key: string; dc: number; db: number }[] = [];
  for (const [key, g] of b) {
    const o = a.get(key) ?? { count: 0, bytes: 0 };
    rows.push({ key, dc: g.count - o.count, db: g.bytes - o.bytes });
  }
  rows.sort((x, y) => y.db - x.db);
  const total = rows.reduce((s, r) => s + r.db, 0);
  const lines = [`  heap snapshot: ${(total / n).toFixed(0)} B per connection in all groups; groups growing by >= 8 B per connection:`];
  for (const r of rows) {
    if (r.db / n < 8) break;
    lines.push(`    ${(r.db / n).toFixed(0).padStart(6)} B  ${(r.dc / n).toFixed(2).padStart(6)} objects  ${r.key}`);
  }
  return lines;
}

// --------------------------------------------------------------------------------------------------------------

function kb(bytes: number, n: number): string {
  return (bytes / n / 1024).toFixed(2);
}

interface Build {
  name: string;
  root: string | undefined;
}

async function measure(t: Target, build: Build, count: number, rounds: number, snapshot: boolean, tmp: string, upstreamPort: number, brokerPort: number): Promise<string[]> {
  const dir = path.join(tmp, `${t}-${build.name}`);
  const { gw, port, probe } = await startTarget(t, dir, upstreamPort, brokerPort, build.root);
  const kind = t === 'mqtt' ? 'mqtt' : 'http';
  const lines: string[] = [];
  try {
    const w = await openClients(kind, port, WARMUP, `${t}-warm`);
    await w.svc.stop();
    const before = await reading(probe, 2000);
    if (snapshot) await probe.ask(`snapshot ${path.join(dir, 'a.heapsnapshot')}`);
    // A stream proxy holds two descriptors per session (the memory scenario's cap).
    const c = await openClients(kind, port, kind === 'mqtt' ? Math.min(count, Math.floor((fdHardLimit() - 400) / 2)) : count, `${t}-hold`);
    const all = await reading(probe, 2000);
    if (snapshot) await probe.ask(`snapshot ${path.join(dir, 'b.heapsnapshot')}`);
    await c.svc.stop();
    const closed = await reading(probe, 4000);
    const n = c.connected;
    const other = (r: Reading) => r.rssGc - r.heapTotal - r.external;
    lines.push(
      `${t} (${build.name}): ${n} connections; KB per connection: RSS ${kb(all.rss - before.rss, n)} (after GC ${kb(all.rssGc - before.rssGc, n)}), ` +
        `heap used ${kb(all.heapUsed - before.heapUsed, n)}, heap total ${kb(all.heapTotal - before.heapTotal, n)}, ` +
        `external ${kb(all.external - before.external, n)} (array buffers ${kb(all.arrayBuffers - before.arrayBuffers, n)}), ` +
        `other native ${kb(other(all) - other(before), n)}`,
      `  RSS MB before ${(before.rss / 1048576).toFixed(1)}, with all ${(all.rss / 1048576).toFixed(1)}, after close ${(closed.rss / 1048576).toFixed(1)} ` +
        `(after GC: ${(before.rssGc / 1048576).toFixed(1)}, ${(all.rssGc / 1048576).toFixed(1)}, ${(closed.rssGc / 1048576).toFixed(1)}); ` +
        `heap used MB ${(before.heapUsed / 1048576).toFixed(1)}, ${(all.heapUsed / 1048576).toFixed(1)}, ${(closed.heapUsed / 1048576).toFixed(1)}; ` +
        `heap total MB ${(before.heapTotal / 1048576).toFixed(1)}, ${(all.heapTotal / 1048576).toFixed(1)}, ${(closed.heapTotal / 1048576).toFixed(1)}`,
    );
    if (snapshot) {
      const [a, b] = await Promise.all([aggregate(path.join(dir, 'a.heapsnapshot')), aggregate(path.join(dir, 'b.heapsnapshot'))]);
      lines.push(...diffGroups(a, b, n));
    }
    for (let r = 2; r <= rounds; r++) {
      const again = await openClients(kind, port, n, `${t}-hold${r}`);
      const held = await reading(probe, 2000);
      await again.svc.stop();
      const down = await reading(probe, 4000);
      lines.push(
        `  round ${r} (${again.connected} connections), after GC: RSS MB with all ${(held.rssGc / 1048576).toFixed(1)}, after close ${(down.rssGc / 1048576).toFixed(1)}; ` +
          `heap used MB ${(held.heapUsed / 1048576).toFixed(1)}, ${(down.heapUsed / 1048576).toFixed(1)}`,
      );
    }
  } finally {
    await gw.stop();
  }
  return lines;
}

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '1' },
    targets: { type: 'string', default: 'socket,node,mqtt' },
    snapshot: { type: 'boolean', default: false },
    base: { type: 'string' },
  },
});
const builds: Build[] = values.base !== undefined ? [{ name: 'base', root: path.resolve(values.base) }, { name: 'this', root: undefined }] : [{ name: 'this', root: undefined }];
const count = Number(values.count);
const targets = values.targets.split(',') as Target[];
const root = await mkdtemp(path.join(os.tmpdir(), 'swy-connmem-'));
const upstream = await startUpstream();
let broker: Service | null = null;
let brokerPort = 0;
try {
  if (targets.includes('mqtt')) {
    brokerPort = await freePort();
    broker = await startMosquitto(path.join(root, 'mosquitto'), brokerPort);
  }
  console.log(`conn-memory: ${count} connections per target, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  for (const t of targets) {
    for (const b of builds) {
      for (const line of await measure(t, b, count, Number(values.rounds), values.snapshot, root, upstream.port, brokerPort)) console.log(line);
    }
  }
} finally {
  await broker?.stop();
  upstream.close();
  if (values.snapshot) console.log(`snapshots kept in ${root}`);
  else await rm(root, { recursive: true, force: true });
}
