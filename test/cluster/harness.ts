// The cluster under test: 3 `switchyard start` processes (etcd provider, one worker each) on a 3-member etcd
// cluster, one Redis, one echo upstream, everything on loopback. Also the measuring tools of the fault tests:
// convergence of one Admin API write and a bounded client load that counts requests and failures.
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import { admin as adminCall, baseConfig, get, ports, startCli, writeConfig, type Gw, type Ports } from '../foundation/cli-helpers.ts';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd-cluster.ts';
import { freePort } from '../helpers/ports.ts';
import { startPeer, tempDir, waitFor, type Peer } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';

export interface Node {
  readonly name: string;
  readonly ports: Ports;
  readonly gw: Gw;
  url(path: string): string;
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
}

export interface RedisPeer {
  readonly port: number;
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface Cluster {
  readonly etcd: EtcdCluster;
  readonly redis: RedisPeer;
  readonly echo: EchoServer;
  readonly nodes: readonly Node[];
  stop(): Promise<void>;
}

/** Keep-alive connections for the measuring clients, so polling measures the gateway and not connect(). */
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** One GET on a pooled keep-alive connection; resolves to the status (0 on a transport error). */
export function status(url: string, timeoutMs = 5000): Promise<{ status: number; error?: string; headers?: http.IncomingHttpHeaders; body?: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', (err) => resolve({ status: 0, error: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, error: err.message }));
  });
}

export async function startRedis(): Promise<RedisPeer> {
  const port = await freePort();
  let peer: Peer | null = null;
  const start = async () => {
    const p = startPeer('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
    peer = p;
    await waitFor(() => {
      if (p.proc.exitCode !== null) throw new Error(`redis-server exited: ${p.output().slice(-1000)}`);
      return p.output().includes('Ready to accept connections');
    }, 10_000, 20);
  };
  await start();
  return {
    port,
    start,
    kill: async () => {
      await peer?.stop('SIGKILL');
      peer = null;
    },
    stop: async () => {
      await peer?.stop('SIGTERM');
      peer = null;
    },
  };
}

export async function startCluster(size = 3): Promise<Cluster> {
  const tmp = await tempDir('swy-cluster-');
  const [etcd, redis, echo] = await Promise.all([startEtcdCluster(3), startRedis(), startEcho('cluster-up')]);
  const prefix = `/swy-cluster-${redis.port}`;
  const nodes: Node[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.gw.peer.stop('SIGKILL')));
    await Promise.all([etcd.stop(), redis.stop(), echo.close()]);
    agent.destroy();
    await tmp.cleanup();
  };
  try {
    const names = ['A', 'B', 'C', 'D', 'E'].slice(0, size);
    const started = await Promise.all(
      names.map(async (name) => {
        const p = await ports();
        const conf = baseConfig(p, 'etcd');
        conf.deployment.etcd = { host: etcd.endpoints, prefix, timeout: 5 };
        const dir = `${tmp.dir}/${name}`;
        await mkdir(dir);
        const gw = await startCli(await writeConfig(dir, conf), p.status);
        const node: Node = {
          name,
          ports: p,
          gw,
          url: (path: string) => `http://127.0.0.1:${p.http}${path}`,
          admin: (method, path, body) => adminCall(p, method, path, body),
        };
        return node;
      }),
    );
    nodes.push(...started);
    for (const n of nodes) {
      await waitFor(async () => (await get(`http://127.0.0.1:${n.ports.status}/status/ready`)).status === 200, 30_000, 50);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { etcd, redis, echo, nodes, stop };
}

/**
 * Milliseconds from `since` to the first 200 for `url`, polling every `stepMs` on a keep-alive connection;
 * rejects after `timeoutMs`.
 */
export async function firstOk(url: string, since: number, timeoutMs = 10_000, stepMs = 1): Promise<number> {
  const deadline = since + timeoutMs;
  for (;;) {
    const r = await status(url);
    if (r.status === 200) return performance.now() - since;
    if (performance.now() > deadline) throw new Error(`${url} not served within ${timeoutMs} ms (last ${r.status} ${r.error ?? ''})`);
    await new Promise((res) => setTimeout(res, stepMs));
  }
}

export interface LoadResult {
  requests: number;
  failures: number;
  /** The first few failures, for the assertion message. */
  samples: string[];
}

export interface Load {
  stop(): Promise<LoadResult>;
}

/**
 * `loops` client loops, each sending GETs for `path` round-robin over the nodes until stop() or `maxMs`, at most
 * `maxRequests` per loop. Every answer other than 200 and every transport error counts as a failure.
 */
export function startLoad(nodes: readonly Node[], path: string, opts: { loops?: number; maxMs?: number; maxRequests?: number } = {}): Load {
  const loops = opts.loops ?? 4;
  const deadline = performance.now() + (opts.maxMs ?? 20_000);
  const maxRequests = opts.maxRequests ?? 200_000;
  const result: LoadResult = { requests: 0, failures: 0, samples: [] };
  let stopped = false;
  const runs = Array.from({ length: loops }, async (_, l) => {
    for (let i = 0; i < maxRequests && !stopped && performance.now() < deadline; i++) {
      const node = nodes[(i + l) % nodes.length]!;
      const r = await status(node.url(path));
      result.requests++;
      if (r.status !== 200) {
        result.failures++;
        if (result.samples.length < 5) result.samples.push(`${node.name}: ${r.status} ${r.error ?? r.body ?? ''}`);
      }
    }
  });
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(runs);
      return result;
    },
  };
}

/** p-th percentile (0..100) of `xs` (nearest rank). */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
