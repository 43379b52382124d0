// A real single-member etcd on random loopback ports with a temp data dir, for config-store tests.
// restart() reuses the same ports and data dir, so the revision history survives (SIGKILL + restart).
import { execFile } from 'node:child_process';
import { freePort } from './ports.ts';
import { startPeer, tempDir, waitFor, type Peer } from './proc.ts';

export interface EtcdPeer {
  /** http://127.0.0.1:<port> */
  readonly endpoint: string;
  readonly port: number;
  readonly dataDir: string;
  /** SIGTERM, then removes the data dir. */
  stop(): Promise<void>;
  /** SIGKILL; the data dir is kept for restart(). */
  kill(): Promise<void>;
  /** Starts etcd again on the same ports and data dir; resolves when healthy. */
  restart(): Promise<void>;
  /** Runs etcdctl (API v3) against this member; resolves to stdout. */
  etcdctl(...args: string[]): Promise<string>;
}

const ETCD_BIN = '/usr/bin/etcd';
const ETCDCTL_BIN = '/usr/bin/etcdctl';
const HEALTH_TIMEOUT_MS = 20_000;

async function healthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    const body = (await res.json()) as { health?: string };
    return res.ok && body.health === 'true';
  } catch {
    return false;
  }
}

export async function startEtcd(): Promise<EtcdPeer> {
  const tmp = await tempDir('swy-etcd-');
  const dataDir = `${tmp.dir}/data`;
  const port = await freePort();
  let peerPort = await freePort();
  while (peerPort === port) peerPort = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', 'swy',
    '--data-dir', dataDir,
    '--listen-client-urls', endpoint,
    '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `swy=${peerUrl}`,
    '--initial-cluster-state', 'new',
    '--logger', 'zap',
    '--log-level', 'error',
  ];
  let proc: Peer | null = null;

  const launch = async (): Promise<void> => {
    const p = startPeer(ETCD_BIN, args);
    proc = p;
    try {
      await waitFor(async () => {
        if (p.proc.exitCode !== null || p.proc.signalCode !== null) throw new Error(`etcd exited: ${p.output().slice(-2000)}`);
        return await healthy(endpoint);
      }, HEALTH_TIMEOUT_MS, 100);
    } catch (err) {
      await p.stop('SIGKILL');
      throw err;
    }
  };

  await launch();

  return {
    endpoint,
    port,
    dataDir,
    stop: async () => {
      if (proc) await proc.stop('SIGTERM');
      proc = null;
      await tmp.cleanup();
    },
    kill: async () => {
      if (proc) await proc.stop('SIGKILL');
      proc = null;
    },
    restart: async () => {
      if (proc) await proc.stop('SIGTERM');
      await launch();
    },
    etcdctl: (...cmd: string[]) =>
      new Promise<string>((resolve, reject) => {
        execFile(
          ETCDCTL_BIN,
          [`--endpoints=${endpoint}`, '--command-timeout=5s', ...cmd],
          { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 10_000, maxBuffer: 4 * 1024 * 1024 },
          (err, stdout, stderr) => (err ? reject(new Error(`etcdctl ${cmd.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)),
        );
      }),
  };
}
