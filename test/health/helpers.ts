// Backends for health tests that can be killed and restarted on the same port, and a HealthManager driven by
// snapshots built from StoredItems through the real snapshot builder (schema defaults applied).
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import type { StoredItem } from '../../src/config/resources.ts';
import { buildSnapshot } from '../../src/config/snapshot.ts';
import { HealthManager, type HealthManagerOptions } from '../../src/health/manager.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { BalancerRegistry } from '../../src/upstream/balancer.ts';
import { freePort, freeTcpUdpPort } from '../helpers/ports.ts';
import { item, registries } from '../helpers/items.ts';

export { item, registries };

export interface TestManager {
  readonly manager: HealthManager;
  readonly balancers: BalancerRegistry;
  /** Syncs the manager with a snapshot of `items`; throws if one is invalid. */
  sync(items: StoredItem[]): void;
}

export function testManager(opts: Partial<HealthManagerOptions> = {}): TestManager {
  const { plugins, balancers } = registries();
  const manager = new HealthManager({ balancers, logger: silentLogger, ...opts });
  let rev = 0;
  return {
    manager,
    balancers,
    sync(items) {
      const snap = buildSnapshot(items, ++rev, { plugins });
      if (snap.errors.length > 0) throw new Error(snap.errors.map((e) => `${e.key}: ${e.message}`).join('; '));
      manager.sync(snap);
    },
  };
}

export interface Backend {
  readonly name: string;
  readonly port: number;
  /** Requests on `probePath` seen since start (all incarnations). */
  probes: number;
  /** Other requests. */
  hits: number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * An HTTP backend: `probePath` answers `probeStatus` (changeable), everything else `status` with header
 * `x-upstream: name`. stop() closes the port (connections refused), start() reopens it on the same port.
 */
export async function httpBackend(
  name: string,
  opts: { probePath?: string; probeStatus?: number; status?: number; host?: string; port?: number } = {},
): Promise<Backend & { probeStatus: number; status: number }> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(host));
  const probePath = opts.probePath ?? '/health';
  let server: http.Server | null = null;
  const b = {
    name,
    port,
    probes: 0,
    hits: 0,
    probeStatus: opts.probeStatus ?? 200,
    status: opts.status ?? 200,
    async start(): Promise<void> {
      const s = http.createServer((req, res) => {
        req.resume();
        const isProbe = (req.url ?? '').split('?')[0] === probePath;
        if (isProbe) b.probes++;
        else b.hits++;
        res.writeHead(isProbe ? b.probeStatus : b.status, { 'x-upstream': name, connection: 'close' });
        res.end(name);
      });
      s.keepAliveTimeout = 1000;
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, host, () => resolve());
      });
      server = s;
    },
    async stop(): Promise<void> {
      const s = server;
      server = null;
      if (!s) return;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
  await b.start();
  return b;
}

/** A TCP echo backend (stop/start on the same port). `hits` counts connections. */
export async function tcpBackend(name: string): Promise<Backend> {
  const port = await freePort();
  let server: net.Server | null = null;
  const sockets = new Set<net.Socket>();
  const b: Backend = {
    name,
    port,
    probes: 0,
    hits: 0,
    async start() {
      const s = net.createServer((sock) => {
        b.hits++;
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
        sock.on('error', () => undefined);
        sock.on('data', (d) => sock.write(`${name}:${d.toString()}`));
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, '127.0.0.1', () => resolve());
      });
      server = s;
    },
    async stop() {
      const s = server;
      server = null;
      if (!s) return;
      for (const sock of sockets) sock.destroy();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
  await b.start();
  return b;
}

/** A UDP backend answering `pong` to `ping` (probes) and echoing anything else. */
export async function udpBackend(name: string): Promise<Backend> {
  const port = await freeTcpUdpPort();
  let sock: dgram.Socket | null = null;
  const b: Backend = {
    name,
    port,
    probes: 0,
    hits: 0,
    async start() {
      const s = dgram.createSocket('udp4');
      s.on('message', (msg, rinfo) => {
        if (msg.toString() === 'ping') {
          b.probes++;
          s.send('pong', rinfo.port, rinfo.address);
        } else {
          b.hits++;
          s.send(`${name}:${msg.toString()}`, rinfo.port, rinfo.address);
        }
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind(port, '127.0.0.1', () => resolve());
      });
      sock = s;
    },
    async stop() {
      const s = sock;
      sock = null;
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
  await b.start();
  return b;
}

/** GET with a fresh connection; resolves status, body and the answering upstream. */
export function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; upstream: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { connection: 'close', ...headers }, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, upstream: String(res.headers['x-upstream'] ?? '') }));
    });
    req.on('timeout', () => req.destroy(new Error('request timeout')));
    req.on('error', reject);
  });
}
