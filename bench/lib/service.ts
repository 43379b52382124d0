// A process the harness started (upstream, proxy under test, load client): its root pid for /proc sampling,
// how to stop it, and its captured output for error messages.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { startPeer } from '../../test/helpers/proc.ts';

export interface Service {
  readonly name: string;
  /** Root of the process tree (master / parent); sample with processTree(pid). */
  readonly pid: number;
  output(): string;
  alive(): boolean;
  stop(): Promise<void>;
}

/**
 * The hard open-files limit children inherit (Node, nginx and haproxy raise their soft limit to it). A proxy
 * needs two descriptors per proxied connection, which bounds the idle-connection test.
 */
export function fdHardLimit(): number {
  try {
    const m = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) return m[1] === 'unlimited' ? 1_048_576 : Number(m[1]);
  } catch {
    /* not Linux */
  }
  return 1024;
}

export function spawnService(name: string, cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Service {
  const peer = startPeer(cmd, args, opts);
  return {
    name,
    pid: peer.pid,
    output: () => peer.output(),
    alive: () => peer.proc.exitCode === null && peer.proc.signalCode === null,
    stop: () => peer.stop('SIGTERM'),
  };
}

export function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 1000);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Resolves when every port accepts connections; throws (with the service output) if it exits or times out. */
export async function waitListening(svc: Service, ports: readonly number[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let up = 0;
    for (const p of ports) if (await canConnect(p)) up++;
    if (up === ports.length) return;
    const why = !svc.alive() ? 'exited' : Date.now() > deadline ? `not listening after ${timeoutMs} ms` : null;
    if (why !== null) {
      await svc.stop();
      throw new Error(`${svc.name} did not start (${why}):\n${svc.output().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Stops services in reverse start order, ignoring the ones already gone. */
export async function stopAll(services: Service[]): Promise<void> {
  for (const s of services.reverse()) await s.stop().catch(() => undefined);
  services.length = 0;
}

/** Registers the service once it has started, so a failure elsewhere in a Promise.all still stops it. */
export function track<S extends Service>(list: Service[], p: Promise<S>): Promise<S> {
  return p.then((svc) => {
    list.push(svc);
    return svc;
  });
}
