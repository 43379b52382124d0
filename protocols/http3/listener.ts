// The QUIC listener of one `apisix.ssl.listen` entry with `enable_http3: true`: UDP on the HTTPS port number,
// HTTP/3 sessions on top of @matrixai/quic (Cloudflare quiche through napi; the only QUIC stack that installs
// from npm here, as Node ships without node:quic). Certificates come from the shared store, but quiche takes
// one certificate per connection configuration and this binding offers no SNI callback, so every QUIC
// handshake gets the `fallback_sni` certificate (else the first one of the store); the configuration is
// refreshed before each accept, so a certificate changed through the Admin API serves the next connection.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { QUICServer, events, type QUICConnection, type QUICStream } from '@matrixai/quic';
import Logger, { LogLevel } from '@matrixai/logger';
import type { HttpLimits } from '../http/listener.ts';
import type { Listener, ListenerAddress } from '../../src/listener/registry.ts';
import type { Logger as AppLogger } from '../../src/observability/logger.ts';
import type { TlsInfo } from '../../src/pipeline/downstream.ts';
import type { HttpPipeline } from '../../src/pipeline/pipeline.ts';
import type { CertificateStore, SslChoice } from '../../src/tls/store.ts';
import { H3Error, H3_INTERNAL_ERROR } from './frames.ts';
import { applyQuicFixes, PatchedQUICSocket } from './quic-fixes.ts';
import { H3Session } from './session.ts';

export interface Http3ListenerOptions {
  host: string;
  port: number;
  limits: HttpLimits;
  pipeline: HttpPipeline;
  certificates: () => CertificateStore | null;
  fallbackSni?: string;
  logger: AppLogger;
  /** Concurrent request streams per connection (QUIC MAX_STREAMS, renewed as streams finish). */
  maxStreams?: number;
}

/** The certificate QUIC handshakes use: fallback_sni's, else the store's first. */
export function quicCertificate(store: CertificateStore | null, fallbackSni: string | undefined): SslChoice | undefined {
  if (store === null) return undefined;
  const byName = fallbackSni !== undefined ? store.lookup(fallbackSni) : undefined;
  if (byName !== undefined) return byName;
  for (const c of store.cache.values()) return c.choice;
  return undefined;
}

function pems(v: unknown): string[] {
  const list = Array.isArray(v) ? v : [v];
  return list.filter((x): x is string => typeof x === 'string');
}

// Retry tokens are HMAC-signed with a per-process key (quiche's stateless retry).
const cryptoOps = {
  async sign(key: ArrayBuffer, data: ArrayBuffer): Promise<ArrayBuffer> {
    const mac = createHmac('sha256', Buffer.from(key)).update(Buffer.from(data)).digest();
    return mac.buffer.slice(mac.byteOffset, mac.byteOffset + mac.byteLength);
  },
  async verify(key: ArrayBuffer, data: ArrayBuffer, sig: ArrayBuffer): Promise<boolean> {
    const mac = createHmac('sha256', Buffer.from(key)).update(Buffer.from(data)).digest();
    const s = Buffer.from(sig);
    return s.length === mac.length && timingSafeEqual(s, mac);
  },
};

const reasonToCode = (_type: 'read' | 'write', reason?: unknown): number => (reason instanceof H3Error ? reason.code : H3_INTERNAL_ERROR);
const codeToReason = (_type: 'read' | 'write', code: number): H3Error => new H3Error(code, `peer reset the stream (0x${code.toString(16)})`, true);

export function createHttp3Listener(opts: Http3ListenerOptions): Listener {
  const quietLogger = new Logger('quic', LogLevel.SILENT);
  const sessions = new Map<QUICConnection, H3Session>();
  let socket: PatchedQUICSocket | null = null;
  let server: QUICServer | null = null;
  let bound = { host: opts.host, port: opts.port };
  let seen: CertificateStore | null | undefined;
  let choice: SslChoice | undefined;
  let tls: TlsInfo = tlsInfo(undefined);
  const maxStreams = opts.maxStreams ?? 128;
  const { limits } = opts;

  const refreshCertificate = (): void => {
    const store = opts.certificates();
    if (store === seen || server === null) return;
    seen = store;
    const next = quicCertificate(store, opts.fallbackSni);
    if (next === undefined || next === choice) return;
    choice = next;
    tls = tlsInfo(next);
    server.updateConfig({ cert: pems(next.options.cert), key: pems(next.options.key) });
  };

  const sessionOf = (conn: QUICConnection): H3Session => {
    let s = sessions.get(conn);
    if (s === undefined) {
      s = new H3Session(conn, {
        qpack: { maxTableCapacity: 4096, maxBlockedStreams: 16, maxFieldSectionSize: limits.max_header_size, maxFields: limits.max_headers_count },
        serverAddr: bound.host,
        serverPort: bound.port,
        tls,
        handle: (req, down) => opts.pipeline.handle(req, down),
        logger: opts.logger,
      });
      sessions.set(conn, s);
      conn.addEventListener(events.EventQUICConnectionStopped.name, () => {
        sessions.get(conn)?.onClosed();
        sessions.delete(conn);
      }, { once: true });
    }
    return s;
  };

  const onConnection = (evt: Event): void => {
    sessionOf((evt as events.EventQUICServerConnection).detail).open();
  };
  // Streams can be announced before the connection event (the client's first flight), so they are taken from
  // the server's event, which every connection's events bubble to.
  const onStream = (evt: Event): void => {
    const stream = (evt as events.EventQUICConnectionStream).detail as QUICStream;
    sessionOf(H3Session.connectionOf(stream)).onStream(stream);
  };

  return {
    kind: 'http3',
    async listen() {
      applyQuicFixes();
      socket = new PatchedQUICSocket({ logger: quietLogger });
      await socket.start({ host: opts.host, port: opts.port });
      const first = quicCertificate(opts.certificates(), opts.fallbackSni);
      server = new QUICServer({
        crypto: { key: randomBytes(32).buffer as ArrayBuffer, ops: cryptoOps },
        config: {
          applicationProtos: ['h3'],
          verifyPeer: false,
          // 0-RTT data is replayable; requests wait for the handshake (RFC 9114 10.9 leaves it to the server).
          enableEarlyData: false,
          maxIdleTimeout: limits.keepalive_timeout * 1000,
          initialMaxStreamsBidi: maxStreams,
          initialMaxStreamsUni: 8,
          initialMaxData: 16 * 1024 * 1024,
          initialMaxStreamDataBidiRemote: 1024 * 1024,
          initialMaxStreamDataBidiLocal: 1024 * 1024,
          initialMaxStreamDataUni: 256 * 1024,
          readableChunkSize: 64 * 1024,
          // Without any certificate yet the listener still runs; handshakes fail until one is configured.
          cert: first !== undefined ? pems(first.options.cert) : [],
          key: first !== undefined ? pems(first.options.key) : [],
        },
        socket,
        reasonToCode,
        codeToReason,
        // A handshake that does not complete in client_header_timeout is dropped.
        minIdleTimeout: limits.client_header_timeout * 1000,
        logger: quietLogger,
      });
      choice = first;
      tls = tlsInfo(first);
      seen = opts.certificates();
      await server.start();
      socket.beforeAccept = refreshCertificate;
      server.addEventListener(events.EventQUICServerConnection.name, onConnection);
      server.addEventListener(events.EventQUICConnectionStream.name, onStream);
      bound = { host: socket.host, port: socket.port };
    },
    async close({ graceful }) {
      if (server === null || socket === null) return;
      const srv = server;
      socket.beforeAccept = null;
      if (graceful) await Promise.all([...sessions.values()].map((s) => s.shutdown(limits.graceful_shutdown_timeout * 1000)));
      await srv.stop({ isApp: true, errorCode: 0x100, force: true }).catch(() => undefined);
      await socket.stop({ force: true }).catch(() => undefined);
      server = null;
      socket = null;
    },
    addresses: (): ListenerAddress[] => [{ protocol: 'quic', ...bound }],
  };
}

function tlsInfo(choice: SslChoice | undefined): TlsInfo {
  return {
    // quiche does not report the client's SNI through this binding.
    servername: '',
    protocol: 'TLSv1.3',
    cipher: '',
    clientVerify: 'NONE',
    clientSubject: '',
    clientIssuer: '',
    clientSerial: '',
    sslId: choice?.sslId ?? '',
    skipMtls: null,
    mtlsRequired: false,
  };
}
