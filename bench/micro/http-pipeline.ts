// CPU per proxied HTTP request of the in-process gateway: one route, no plugins, nginx serving a 1 KB file as
// the upstream, wrk -t1 -c50 keep-alive as the client (both separate processes). Reports the gateway
// process's user+system CPU µs per request (median of rounds), which CPU steal affects far less than req/s.
// Run: `npx node bench/micro/http-pipeline.ts [--smoke] [--seconds N] [--target gateway|fastify|undici] [--no-h2c]`; add `--cpu-prof` (node flag, before
// the script) to profile exactly the measured gateway.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { writeFile } from 'node:fs/promises';
import { parseLocalConfig } from '../../src/config/local.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startGateway } from '../../src/main.ts';
import { freePort } from '../../test/helpers/ports.ts';
import { tempDir } from '../../test/helpers/proc.ts';
import { startNginxUpstream } from '../lib/nginx.ts';
import { startFastifyProxy, startUndiciProxy } from '../lib/node-peers.ts';
import { processTree, sampleTree } from '../lib/procfs.ts';
import type { Service } from '../lib/service.ts';
import { runWrk } from '../lib/wrk.ts';

export interface PipelineResult {
  cpu_us_per_req: number;
  /** The kernel's share (system CPU) of cpu_us_per_req. */
  sys_us_per_req: number;
  rps: number;
  rounds: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** The gateway in this process, or a comparison peer (its own process, sampled from /proc). */
export type PipelineTarget = 'gateway' | 'fastify' | 'undici';

interface Cpu {
  total: number;
  system: number;
}

export async function run(
  opts: { smoke?: boolean; seconds?: number; rounds?: number; target?: PipelineTarget; h2c?: boolean } = {},
): Promise<PipelineResult> {
  const target = opts.target ?? 'gateway';
  const seconds = opts.seconds ?? (opts.smoke ? 1 : 4);
  const rounds = opts.rounds ?? (opts.smoke ? 1 : 3);
  const { dir, cleanup } = await tempDir('swy-pipe-');
  const upPort = await freePort();
  const upstream = await startNginxUpstream(path.join(dir, 'upstream'), upPort);
  const [port, adminPort, statusPort] = [await freePort(), await freePort(), await freePort()];
  const conf = {
    apisix: {
      node_listen: [{ ip: '127.0.0.1', port }],
      enable_http2: opts.h2c ?? true,
      status: { ip: '127.0.0.1', port: statusPort },
      enable_control: false,
    },
    deployment: {
      role: 'traditional',
      role_traditional: { config_provider: 'yaml' },
      admin: {
        admin_key: [{ name: 'admin', key: 'bench-admin-key-0123456789abcdef', role: 'admin' }],
        admin_listen: { ip: '127.0.0.1', port: adminPort },
        allow_admin: ['127.0.0.0/8'],
      },
    },
    switchyard: { worker_processes: 1, access_log: { enable: false } },
  };
  const configFile = path.join(dir, 'config.yaml');
  await writeFile(configFile, stringify(conf));
  const routes = [{ id: '1', uri: '/*', upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${upPort}`]: 1 } } }];
  await writeFile(path.join(dir, 'apisix.yaml'), stringify({ routes }) + '#END\n');
  const parsed = parseLocalConfig(stringify(conf));
  if (!parsed.ok) throw new Error(parsed.errors.join('; '));
  let peer: Service | null = null;
  let cpuNow: () => Cpu;
  let gw: Awaited<ReturnType<typeof startGateway>> | null = null;
  if (target === 'gateway') {
    gw = await startGateway({ config: parsed.config, configFile, role: 'all', logger: silentLogger });
    cpuNow = () => {
      const u = process.cpuUsage();
      return { total: u.user + u.system, system: u.system };
    };
  } else {
    peer = await (target === 'fastify' ? startFastifyProxy : startUndiciProxy)(port, upPort);
    const pids = processTree(peer.pid);
    // /proc gives no user/system split per tree here; the system share is reported as NaN for peers.
    cpuNow = () => ({ total: sampleTree(pids).cpuUs, system: NaN });
  }
  const url = `http://127.0.0.1:${port}/`;
  try {
    await runWrk({ url, connections: 50, durationSec: opts.smoke ? 1 : 2, threads: 1 });
    const cpu: number[] = [];
    const sys: number[] = [];
    const rps: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const before = cpuNow();
      const r = await runWrk({ url, connections: 50, durationSec: seconds, threads: 1 });
      const after = cpuNow();
      if (r.non2xx > 0 || r.requests === 0) throw new Error(`${target} answered ${r.non2xx} non-2xx of ${r.requests}`);
      cpu.push((after.total - before.total) / r.requests);
      sys.push((after.system - before.system) / r.requests);
      rps.push(r.rps);
    }
    const round1 = (x: number): number => Math.round(x * 10) / 10;
    return { cpu_us_per_req: round1(median(cpu)), sys_us_per_req: round1(median(sys)), rps: Math.round(median(rps)), rounds };
  } finally {
    await gw?.close({ graceful: false });
    await peer?.stop();
    await upstream.stop();
    await cleanup();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const smoke = process.argv.includes('--smoke');
  const s = process.argv.indexOf('--seconds');
  const t = process.argv.indexOf('--target');
  const target = (t > 0 ? process.argv[t + 1] : 'gateway') as PipelineTarget;
  const result = await run({ smoke, target, h2c: !process.argv.includes('--no-h2c'), seconds: s > 0 ? Number(process.argv[s + 1]) : undefined });
  console.log(JSON.stringify(result));
  process.exit(0);
}
