// A real 3-member (or n-member) etcd cluster on random loopback client and peer ports, each member with its own
// temp data dir, for cluster fault tests. Members are stopped by pid; kill() keeps the data dir so start()
// rejoins the same member (its id and log survive), as a crashed and restarted etcd node would.
import { execFile } from 'node:child_process';
import { freePort } from './ports.ts';
import { startPeer, tempDir, waitFor, type Peer } from './proc.ts';

const ETCD_BIN = '/usr/bin/etcd';
const ETCDCTL_BIN = '/usr/bin/etcdctl';
const HEALTH_TIMEOUT_MS = 20_000;

export interface EtcdMember {
  readonly name: string;
  /** http://127.0.0.1:<client port> */
  readonly endpoint: string;
  readonly peerUrl: string;
  readonly running: boolean;
  /** pid of the running process (0 when stopped). */
  readonly pid: number;
  /** SIGKILL; the data dir is kept for start(). */
  kill(): Promise<void>;
  /** Starts the member again on its ports and data dir; resolves when it reports healthy. */
  start(): Promise<void>;
}

export interface EtcdMemberStatus {
  name: string;
  endpoint: string;
  memberId: string;
  leaderId: string;
  raftTerm: number;
  revision: number;
}

export interface EtcdCluster {
  readonly members: readonly EtcdMember[];
  /** Every member's client endpoint (the gateways' deployment.etcd.host). */
  readonly endpoints: string[];
  /** `etcdctl endpoint status -w json` over the running members. */
  status(): Promise<EtcdMemberStatus[]>;
  /** The member the running members agree is the raft leader. */
  leader(): Promise<EtcdMember>;
  /** Runs etcdctl (API v3) against the running members; resolves to stdout. */
  etcdctl(...args: string[]): Promise<string>;
  /** SIGKILLs every running member (nothing to flush: the data dirs are temporary) and removes the data dirs. */
  stop(): Promise<void>;
}

async function healthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    const body = (await res.json()) as { health?: string };
    return res.ok && body.health === 'true';
  } catch {
    return false;
  }
}

function etcdctl(endpoints: string[], args: string[]): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile(
      ETCDCTL_BIN,
      [`--endpoints=${endpoints.join(',')}`, '--command-timeout=5s', '--dial-timeout=2s', ...args],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 10_000, maxBuffer: 4 * 1024 * 1024 },
      (err, stdout, stderr) => (err ? reject(new Error(`etcdctl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)),
    );
  });
}

async function distinctPorts(n: number): Promise<number[]> {
  const seen = new Set<number>();
  while (seen.size < n) seen.add(await freePort());
  return [...seen];
}

export async function startEtcdCluster(size = 3): Promise<EtcdCluster> {
  const tmp = await tempDir('swy-etcd-cluster-');
  const ports = await distinctPorts(size * 2);
  const specs = Array.from({ length: size }, (_, i) => ({
    name: `m${i + 1}`,
    endpoint: `http://127.0.0.1:${ports[2 * i]!}`,
    peerUrl: `http://127.0.0.1:${ports[2 * i + 1]!}`,
    dataDir: `${tmp.dir}/m${i + 1}`,
  }));
  const initialCluster = specs.map((s) => `${s.name}=${s.peerUrl}`).join(',');

  const members = specs.map((s) => {
    let proc: Peer | null = null;
    const args = [
      '--name', s.name,
      '--data-dir', s.dataDir,
      '--listen-client-urls', s.endpoint,
      '--advertise-client-urls', s.endpoint,
      '--listen-peer-urls', s.peerUrl,
      '--initial-advertise-peer-urls', s.peerUrl,
      '--initial-cluster', initialCluster,
      // Ignored once the data dir holds a member: a restart rejoins with its own identity.
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', `swy-${ports[0]!}`,
      // Loopback only: a short heartbeat keeps elections after a leader kill well under a second.
      '--heartbeat-interval', '50',
      '--election-timeout', '500',
      '--logger', 'zap',
      '--log-level', 'error',
    ];
    const member: EtcdMember = {
      name: s.name,
      endpoint: s.endpoint,
      peerUrl: s.peerUrl,
      get running() {
        return proc !== null && proc.proc.exitCode === null && proc.proc.signalCode === null;
      },
      get pid() {
        return proc?.pid ?? 0;
      },
      kill: async () => {
        if (proc) await proc.stop('SIGKILL');
        proc = null;
      },
      start: async () => {
        if (proc) throw new Error(`etcd member ${s.name} is already running`);
        const p = startPeer(ETCD_BIN, args);
        proc = p;
        try {
          await waitFor(async () => {
            if (p.proc.exitCode !== null || p.proc.signalCode !== null) throw new Error(`etcd ${s.name} exited: ${p.output().slice(-2000)}`);
            return await healthy(s.endpoint);
          }, HEALTH_TIMEOUT_MS, 100);
        } catch (err) {
          await p.stop('SIGKILL');
          proc = null;
          throw err;
        }
      },
    };
    return member;
  });

  const running = () => members.filter((m) => m.running).map((m) => m.endpoint);
  const status = async (): Promise<EtcdMemberStatus[]> => {
    // One endpoint per call: a dead member makes a multi-endpoint status call fail as a whole.
    const out: EtcdMemberStatus[] = [];
    for (const m of members) {
      if (!m.running) continue;
      const text = await etcdctl([m.endpoint], ['endpoint', 'status', '-w', 'json']);
      const [s] = JSON.parse(text) as {
        Endpoint: string;
        Status: { header: { member_id: number | string; raft_term: number; revision: number }; leader: number | string };
      }[];
      if (!s) throw new Error(`no status from ${m.endpoint}`);
      out.push({
        name: m.name,
        endpoint: m.endpoint,
        memberId: String(s.Status.header.member_id),
        leaderId: String(s.Status.leader),
        raftTerm: Number(s.Status.header.raft_term),
        revision: Number(s.Status.header.revision),
      });
    }
    return out;
  };

  const cluster: EtcdCluster = {
    members,
    endpoints: specs.map((s) => s.endpoint),
    status,
    leader: async () => {
      const found = await waitFor(async () => {
        const st = await status();
        const leaderId = st[0]?.leaderId;
        if (!leaderId || leaderId === '0' || !st.every((s) => s.leaderId === leaderId)) return undefined;
        const self = st.find((s) => s.memberId === leaderId);
        return self ? members.find((m) => m.name === self.name) : undefined;
      }, 10_000, 100);
      return found!;
    },
    etcdctl: (...args: string[]) => etcdctl(running(), args),
    stop: async () => {
      await Promise.all(
        members.map(async (m) => {
          if (m.running) await m.kill();
        }),
      );
      await tmp.cleanup();
    },
  };

  try {
    // The members of a new cluster wait for each other to reach quorum: start them together.
    await Promise.all(members.map((m) => m.start()));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
