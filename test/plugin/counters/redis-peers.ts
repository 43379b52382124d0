// Real Redis peers on random loopback ports for the rate limiting tests: a plain server, a one-node Redis
// Cluster owning every slot, and a sentinel watching a server. Stopped by pid.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../helpers/ports.ts';
import { startPeer, tempDir, waitFor, type Peer } from '../../helpers/proc.ts';

export interface RedisPeer {
  readonly port: number;
  readonly peer: Peer;
  stop(): Promise<void>;
}

async function until(port: number, ok: (c: Redis) => Promise<boolean>): Promise<void> {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => undefined);
  try {
    await waitFor(async () => {
      try {
        if (c.status !== 'ready') await c.connect();
        return await ok(c);
      } catch {
        c.disconnect();
        return false;
      }
    }, 15_000, 50);
  } finally {
    c.disconnect();
  }
}

const base = (port: number) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];

export async function startRedis(port?: number): Promise<RedisPeer> {
  const p = port ?? (await freePort());
  const peer = startPeer('redis-server', base(p));
  await until(p, async (c) => (await c.ping()) === 'PONG');
  return { port: p, peer, stop: () => peer.stop() };
}

/** A one-node Redis Cluster: enough for cluster-mode clients (MOVED-free, slot-checked commands). */
export async function startRedisCluster(): Promise<RedisPeer> {
  const port = await freePort();
  const { dir, cleanup } = await tempDir('swy-redis-cluster-');
  const peer = startPeer('redis-server', [
    ...base(port),
    '--cluster-enabled', 'yes',
    // Without it the node announces an empty address in CLUSTER SLOTS.
    '--cluster-announce-ip', '127.0.0.1',
    '--cluster-config-file', path.join(dir, 'nodes.conf'),
    '--dir', dir,
  ]);
  await until(port, async (c) => (await c.ping()) === 'PONG');
  await until(port, async (c) => {
    const info = String(await c.call('CLUSTER', 'INFO'));
    if (info.includes('cluster_state:ok')) return true;
    if (info.includes('cluster_slots_assigned:0')) await c.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
    return false;
  });
  return {
    port,
    peer,
    stop: async () => {
      await peer.stop();
      await cleanup();
    },
  };
}

/** A server plus a sentinel monitoring it as `mymaster`; `port` is the sentinel's. */
export async function startRedisSentinel(): Promise<RedisPeer & { master: RedisPeer }> {
  const master = await startRedis();
  const port = await freePort();
  const { dir, cleanup } = await tempDir('swy-redis-sentinel-');
  const conf = path.join(dir, 'sentinel.conf');
  await writeFile(conf, `port ${port}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor mymaster 127.0.0.1 ${master.port} 1\n`);
  const peer = startPeer('redis-server', [conf, '--sentinel']);
  await until(port, async (c) => {
    const addr = (await c.call('SENTINEL', 'get-master-addr-by-name', 'mymaster')) as string[] | null;
    return Array.isArray(addr) && addr[1] === String(master.port);
  });
  return {
    port,
    peer,
    master,
    stop: async () => {
      await peer.stop();
      await master.stop();
      await cleanup();
    },
  };
}
