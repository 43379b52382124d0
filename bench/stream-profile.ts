// Profiling driver for the TCP stream proxy (not a scenario): the tcp-stream loads (new connections with one
// 1 KB request each; 1 MB responses over 4 keep-alive connections) against this checkout's gateway, optionally
// a second build (--base <checkout with node_modules>) and nginx stream, alternating A B [nginx] per round so
// a loaded machine's drift hits all alike. Prints proxy CPU µs per connection / per MB from /proc/<pid>/stat.
// --prof <dir> starts the gateways with --cpu-prof (profiles written there when they exit).
//
//   node bench/stream-profile.ts [--base /tmp/base] [--rounds 4] [--duration 3] [--prof /tmp/prof] [--only conn|mb]
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../test/helpers/ports.ts';
import { startGateway } from './lib/gateway.ts';
import { startNginxStream, startNginxUpstream } from './lib/nginx.ts';
import { processTree, sampleTree } from './lib/procfs.ts';
import { stopAll, type Service } from './lib/service.ts';
import { median } from './lib/stats.ts';
import { runWrk } from './lib/wrk.ts';

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    rounds: { type: 'string', default: '4' },
    duration: { type: 'string', default: '3' },
    prof: { type: 'string' },
    only: { type: 'string' },
    nginx: { type: 'boolean', default: true },
  },
});
const rounds = Number(values.rounds);
const duration = Number(values.duration);

interface T {
  name: string;
  port: number;
  pid: number;
}

const LOADS = [
  { key: 'conn', label: 'µs/conn', path: '/', connections: 20, headers: ['Connection: close'] },
  { key: 'mb', label: 'µs/MB', path: '/big', connections: 4, headers: [] as string[] },
].filter((l) => values.only === undefined || l.key === values.only);

const services: Service[] = [];
const gateways: Service[] = [];
const tmp = await mkdtemp(path.join(os.tmpdir(), 'stream-prof-'));
try {
  const upPort = await freePort();
  services.push(await startNginxUpstream(path.join(tmp, 'upstream'), upPort));
  if (values.prof !== undefined) process.env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${values.prof}`;
  const targets: T[] = [];
  const builds: [string, string | undefined][] = [['head', undefined]];
  if (values.base !== undefined) builds.unshift(['base', values.base]);
  for (const [name, root] of builds) {
    const port = await freePort();
    const gw = await startGateway({
      dir: path.join(tmp, name),
      root,
      streamPorts: [port],
      standalone: { stream_routes: [{ id: '1', server_port: port, upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${upPort}`]: 1 } } }] },
    });
    services.push(gw);
    gateways.push(gw);
    targets.push({ name, port, pid: gw.pid });
  }
  delete process.env.NODE_OPTIONS;
  if (values.nginx) {
    const port = await freePort();
    const ng = await startNginxStream(path.join(tmp, 'nginx'), port, upPort);
    services.push(ng);
    targets.push({ name: 'nginx', port, pid: ng.pid });
  }
  for (const load of LOADS) {
    for (const t of targets) await runWrk({ url: `http://127.0.0.1:${t.port}${load.path}`, connections: load.connections, durationSec: 1, headers: load.headers });
    const cpu = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    for (let r = 0; r < rounds; r++) {
      for (const t of targets) {
        const tree = processTree(t.pid);
        const before = sampleTree(tree).cpuUs;
        const w = await runWrk({ url: `http://127.0.0.1:${t.port}${load.path}`, connections: load.connections, durationSec: duration, headers: load.headers });
        const us = (sampleTree(tree).cpuUs - before) / Math.max(1, w.requests);
        const errs = w.errors.connect + w.errors.read + w.errors.write + w.errors.timeout + w.non2xx;
        cpu.get(t.name)!.push(us);
        console.log(`${load.key} r${r + 1} ${t.name.padEnd(6)} ${Math.round(w.rps).toString().padStart(6)} req/s  ${us.toFixed(1).padStart(7)} ${load.label}${errs > 0 ? `  errors ${errs}` : ''}`);
      }
    }
    const line = targets.map((t) => `${t.name} ${median(cpu.get(t.name)!).toFixed(1)}`).join('  ');
    console.log(`${load.key} median ${load.label}: ${line}  (load ${os.loadavg()[0]!.toFixed(1)})`);
  }
} finally {
  // A profile is written at exit, which can take longer than stop()'s 5 s before SIGKILL.
  if (values.prof !== undefined) {
    for (const g of gateways) process.kill(g.pid, 'SIGTERM');
    for (let i = 0; i < 600 && gateways.some((g) => g.alive()); i++) await new Promise((r) => setTimeout(r, 100));
  }
  await stopAll(services);
  await rm(tmp, { recursive: true, force: true });
}
