// The stream listeners of config.yaml `apisix.stream_proxy`: TCP (plain or TLS-terminating, optionally
// expecting a PROXY protocol header) and UDP. Each session pins the runtime current at accept time.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { httpStats } from '../../src/observability/http-stats.ts';
import type { Logger } from '../../src/observability/logger.ts';
import type { CertificateStore } from '../../src/tls/store.ts';
import type { StreamRuntime } from '../../stream-routes/types.ts';
import { xrpcProtocols, type XrpcHandler, type XrpcRegistry } from '../../stream-routes/xrpc.ts';
import { splitHostPort, type TcpListenSpec, type UdpListenSpec } from './conf.ts';
import { DEFAULT_TIMEOUTS, type SessionDeps, type StreamTimeouts } from './options.ts';
import { TcpSessionHandler } from './tcp.ts';
import { UdpListener, type UdpListenerOptions } from './udp.ts';

export interface StreamListenersOptions {
  tcp: readonly TcpListenSpec[];
  udp: readonly UdpListenSpec[];
  /** The current stream runtime; null until the first snapshot is built (connections are then closed). */
  getRuntime(): StreamRuntime | null;
  logger: Logger;
  timeouts?: Partial<StreamTimeouts>;
  udpOptions?: UdpListenerOptions;
  /** xRPC protocols for routes with `protocol.name` (default: the process-wide registry). */
  xrpc?: XrpcRegistry;
  /** apisix.ssl.fallback_sni, for TLS listeners' clients without SNI. */
  fallbackSni?: string;
  /** The shared certificate store (src/tls/store.ts), for TLS listeners; null until the first build. */
  certificates?: () => CertificateStore | null;
}

export interface StreamAddress {
  protocol: 'tcp' | 'udp';
  host: string;
  port: number;
}

export interface StreamListeners {
  listen(): Promise<void>;
  close(opts: { graceful: boolean }): Promise<void>;
  addresses(): StreamAddress[];
  /** Live TCP sockets (client and upstream sides) and UDP sessions. */
  activeSessions(): number;
}

function noCertificates(): null {
  return null;
}

export function createStreamListeners(opts: StreamListenersOptions): StreamListeners {
  const xrpcRegistry = opts.xrpc ?? xrpcProtocols;
  const xrpcHandlers = new Map<string, XrpcHandler>();
  const deps: SessionDeps = {
    getRuntime: opts.getRuntime,
    logger: opts.logger,
    timeouts: { ...DEFAULT_TIMEOUTS, ...opts.timeouts },
    fallbackSni: opts.fallbackSni,
    certificates: opts.certificates ?? noCertificates,
    xrpc(name) {
      let h = xrpcHandlers.get(name);
      if (h === undefined) {
        const p = xrpcRegistry.get(name);
        if (p === undefined) return undefined;
        xrpcHandlers.set(name, (h = p.create({ logger: opts.logger.child({ xrpc: name }) })));
      }
      return h;
    },
  };
  const live = new Set<Duplex>();
  const servers: { server: net.Server; spec: TcpListenSpec; port: number }[] = [];
  const udps = opts.udp.map((spec) => new UdpListener(spec, deps, opts.udpOptions));

  const listenTcp = async (spec: TcpListenSpec): Promise<void> => {
    const hp = splitHostPort(spec.addr);
    if (hp === null) throw new Error(`invalid tcp listen address ${spec.addr}`);
    const handler = new TcpSessionHandler(spec, deps, live);
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => handler.handle(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(hp.port, hp.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => opts.logger.error({ addr: spec.addr, err: err.message }, 'stream listener error'));
    const bound = server.address();
    const port = bound !== null && typeof bound === 'object' ? bound.port : 0;
    httpStats.notHttpPort(port);
    servers.push({ server, spec, port });
    opts.logger.info({ addr: spec.addr, tls: spec.tls, proxyProtocol: spec.proxyProtocol === true }, 'stream tcp listener started');
  };

  return {
    async listen() {
      try {
        for (const spec of opts.tcp) await listenTcp(spec);
        for (const u of udps) await u.listen();
      } catch (err) {
        await this.close({ graceful: false });
        throw err;
      }
      for (const u of udps) opts.logger.info({ addr: `${u.address().host}:${u.address().port}` }, 'stream udp listener started');
    },

    async close({ graceful }) {
      const closed = Promise.all(servers.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))));
      if (graceful) {
        const deadline = Date.now() + deps.timeouts.drainMs;
        while (live.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      }
      for (const s of [...live]) s.destroy();
      await Promise.all([closed, ...udps.map((u) => u.close(graceful)), ...[...xrpcHandlers.values()].map((h) => h.close())]);
      xrpcHandlers.clear();
      for (const { port } of servers) httpStats.notHttpPortEnd(port);
      servers.length = 0;
    },

    addresses() {
      const out: StreamAddress[] = [];
      for (const { server } of servers) {
        const a = server.address();
        if (a !== null && typeof a === 'object') out.push({ protocol: 'tcp', host: a.address, port: a.port });
      }
      for (const u of udps) out.push({ protocol: 'udp', ...u.address() });
      return out;
    },

    activeSessions() {
      let n = live.size;
      for (const u of udps) n += u.sessionCount;
      return n;
    },
  };
}
