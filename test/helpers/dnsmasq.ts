// A real dnsmasq serving fixed A records on a random loopback UDP port (no upstream resolvers, no hosts file).
import { execFile } from 'node:child_process';
import { freeTcpUdpPort } from './ports.ts';
import { startPeer, waitFor, type Peer } from './proc.ts';

export interface Dnsmasq {
  readonly port: number;
  readonly peer: Peer;
  stop(): Promise<void>;
}

/** `dig +short` against a server; resolves the answer lines (empty on timeout). */
export function dig(server: string, port: number, name: string, extra: string[] = []): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(
      'dig',
      [`@${server}`, '-p', String(port), name, 'A', '+short', '+tries=3', '+time=2', ...extra],
      { timeout: 10_000 },
      (err, stdout) => {
        if (err && (err as { code?: unknown }).code !== 9) return reject(err);
        resolve(
          stdout
            .split('\n')
            .map((l) => l.trim())
            .filter((l) => l !== '' && !l.startsWith(';')),
        );
      },
    );
  });
}

/** records: name -> IPv4 address. */
export async function startDnsmasq(opts: { records: Record<string, string> }): Promise<Dnsmasq> {
  const port = await freeTcpUdpPort();
  const args = [
    '--no-daemon',
    '--port',
    String(port),
    '--listen-address',
    '127.0.0.1',
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    '--conf-file=/dev/null',
    '--user=root',
    '--pid-file=',
  ];
  for (const [name, ip] of Object.entries(opts.records)) args.push(`--host-record=${name},${ip}`);
  const peer = startPeer('dnsmasq', args);
  const [first] = Object.entries(opts.records);
  try {
    await waitFor(async () => {
      if (peer.proc.exitCode !== null) throw new Error('dnsmasq exited');
      if (!first) return true;
      const ans = await dig('127.0.0.1', port, first[0]);
      return ans.includes(first[1]);
    }, 10_000, 100);
  } catch (err) {
    await peer.stop();
    throw new Error(`dnsmasq did not start: ${String(err)}\n${peer.output()}`);
  }
  return { port, peer, stop: () => peer.stop() };
}
