// The QUIC listener of one `apisix.ssl.listen` entry with `enable_http3: true`: UDP on the HTTPS port number,
// HTTP/3 sessions on top of @matrixai/quic (Cloudflare quiche through napi; the only QUIC stack that installs
// from npm here, as Node ships without node:quic). Certificates come from the shared store and are chosen by the
// SNI of the client's ClientHello, read from its Initial packets before the connection is accepted (quiche takes
// the certificate with the connection's configuration and this binding offers no SNI callback; see
// quic-fixes.ts fix 3). The choice follows HTTPS: an SNI without a certificate fails the handshake, a client
// without SNI gets `fallback_sni`'s certificate; the store is read at each accept, so a certificate changed
// through the Admin API serves the next connection. An ssl object with `client.ca` asks the client for a
// certificate, as HTTPS does (see quicTlsInfo for the one difference the binding imposes).
import { createHmac, randomBytes, timingSafeEqual, X509Certificate } from 'node:crypto';
import diagnostics_channel from 'node:diagnostics_channel';
import { events, type QUICConnection, type QUICStream } from '@matrixai/quic';
import Logger, { LogLevel } from '@matrixai/logger';
import type { HttpLimits } from '../http/listener.ts';
import type { Listener, ListenerAddress } from '../../src/listener/registry.ts';
import type { Logger as AppLogger } from '../../src/observability/logger.ts';
import type { TlsInfo } from '../../src/pipeline/downstream.ts';
import type { HttpPipeline } from '../../src/pipeline/pipeline.ts';
import { distinguishedName, sentChainWithinDepth, type CertificateStore, type SslChoice } from '../../src/tls/store.ts';
import { H3Error, H3_INTERNAL_ERROR } from './frames.ts';
import { applyQuicFixes, ConfiguredQUICServer, connectionConfig, PatchedQUICSocket, type ConnectionConfig } from './quic-fixes.ts';
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

/**
 * diagnostics_channel published once per QUIC connection the listener accepted (handshake complete), with an
 * Http3ConnectionMessage. Costs one `hasSubscribers` test when nobody listens.
 */
export const HTTP3_CONNECTION = 'switchyard:http3:connection';
const connectionChannel = diagnostics_channel.channel(HTTP3_CONNECTION);

export interface Http3ConnectionMessage {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly serverAddress: string;
  readonly serverPort: number;
  /** The client's SNI ('' when none). */
  readonly servername: string;
  /** The ssl object whose certificate served the handshake. */
  readonly sslId: string;
}

/**
 * The ssl object a QUIC handshake uses, as on HTTPS (protocols/http/tls-accept.ts): the SNI's (exact, then
 * wildcard); `fallback_sni`'s for a client without SNI; none (the handshake fails) otherwise.
 */
export function quicCertificate(store: CertificateStore | null, sni: string | undefined, fallbackSni: string | undefined): SslChoice | undefined {
  if (store === null) return undefined;
  const name = sni ?? fallbackSni;
  return name !== undefined ? store.lookup(name) : undefined;
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

const NO_CERTIFICATE: ConnectionConfig = { cert: undefined, key: undefined };

/** The connection's ssl object and SNI, carried in its configuration from helloConfig to the session. */
const kChoice = Symbol('switchyard.quicSsl');
const kSni = Symbol('switchyard.quicSni');

/** What a connection of one ssl object is configured with (the store keeps an unchanged object's choice). */
interface Served {
  readonly cert: string[];
  readonly key: string[];
  /** client.ca: quiche asks for a client certificate and checks one sent against it (quic-fixes.ts fix 4). */
  readonly verifyPeer: boolean;
  readonly ca: string | undefined;
}

const reasonToCode = (_type: 'read' | 'write', reason?: unknown): number => (reason instanceof H3Error ? reason.code : H3_INTERNAL_ERROR);
const codeToReason = (_type: 'read' | 'write', code: number): H3Error => new H3Error(code, `peer reset the stream (0x${code.toString(16)})`, true);

export function createHttp3Listener(opts: Http3ListenerOptions): Listener {
  const quietLogger = new Logger('quic', LogLevel.SILENT);
  const sessions = new Map<QUICConnection, H3Session>();
  let socket: PatchedQUICSocket | null = null;
  let server: ConfiguredQUICServer | null = null;
  let bound = { host: opts.host, port: opts.port };
  const maxStreams = opts.maxStreams ?? 128;
  const { limits } = opts;
  /** Per ssl object, built on its first handshake. */
  const servedOf = new WeakMap<SslChoice, Served>();

  // Called once per new connection, with the SNI of its ClientHello.
  const helloConfig = (sni: string | undefined): ConnectionConfig => {
    const choice = quicCertificate(opts.certificates(), sni, opts.fallbackSni);
    // No certificate: quiche fails the handshake (a CONNECTION_CLOSE in an Initial packet), as HTTPS does.
    // Absent, not empty: the binding panics (aborting the process) on an empty certificate list.
    if (choice === undefined) return NO_CERTIFICATE;
    let p = servedOf.get(choice);
    if (p === undefined) {
      const ca = choice.mtls ? pems(choice.options.ca).join('\n') : undefined;
      p = { cert: pems(choice.options.cert), key: pems(choice.options.key), verifyPeer: choice.mtls, ca };
      servedOf.set(choice, p);
    }
    return { cert: p.cert, key: p.key, verifyPeer: p.verifyPeer, ca: p.ca, [kChoice]: choice, [kSni]: sni ?? '' };
  };

  const sessionOf = (conn: QUICConnection): H3Session => {
    let s = sessions.get(conn);
    if (s === undefined) {
      s = new H3Session(conn, {
        qpack: { maxTableCapacity: 4096, maxBlockedStreams: 16, maxFieldSectionSize: limits.max_header_size, maxFields: limits.max_headers_count },
        serverAddr: bound.host,
        serverPort: bound.port,
        tls: quicTlsInfo(conn),
        certificates: opts.certificates,
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
    const session = sessionOf((evt as events.EventQUICServerConnection).detail);
    session.open();
    if (connectionChannel.hasSubscribers) {
      const message: Http3ConnectionMessage = {
        remoteAddress: session.remoteAddr,
        remotePort: session.remotePort,
        serverAddress: bound.host,
        serverPort: bound.port,
        servername: session.tls.servername,
        sslId: session.tls.sslId,
      };
      connectionChannel.publish(message);
    }
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
      server = new ConfiguredQUICServer({
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
          // Each connection gets its certificate from helloConfig; the server's own configuration has none (the
          // library's types require the fields; the binding takes them as optional).
          ...(NO_CERTIFICATE as { cert: string[]; key: string[] }),
        },
        socket,
        reasonToCode,
        codeToReason,
        // A handshake that does not complete in client_header_timeout is dropped.
        minIdleTimeout: limits.client_header_timeout * 1000,
        logger: quietLogger,
      });
      await server.start();
      socket.helloConfig = helloConfig;
      server.addEventListener(events.EventQUICServerConnection.name, onConnection);
      server.addEventListener(events.EventQUICConnectionStream.name, onStream);
      bound = { host: socket.host, port: socket.port };
    },
    async close({ graceful }) {
      if (server === null || socket === null) return;
      const srv = server;
      socket.helloConfig = null;
      if (graceful) await Promise.all([...sessions.values()].map((s) => s.shutdown(limits.graceful_shutdown_timeout * 1000)));
      await srv.stop({ isApp: true, errorCode: 0x100, force: true }).catch(() => undefined);
      await socket.stop({ force: true }).catch(() => undefined);
      server = null;
      socket = null;
    },
    addresses: (): ListenerAddress[] => [{ protocol: 'quic', ...bound }],
  };
}

/**
 * The TLS facts of a QUIC connection whose handshake completed (its session is made on its first stream or on
 * its connection event, both after the handshake), with the same client-certificate outcome as HTTPS
 * (protocols/http/tls-info.ts): NONE when none was sent (the pipeline answers 400 unless skip_mtls_uri_regex
 * matches), SUCCESS for a certificate verified against client.ca within client.depth, FAILED:<reason> past the
 * depth. The verification itself is BoringSSL's inside quiche, against the same client.ca PEM as node's OpenSSL
 * for HTTPS, and the depth rule is the store's (sentChainWithinDepth). The one difference the binding imposes:
 * it offers no way to accept a certificate that fails verification (its custom-verify mode also requires every
 * client to send one, which would refuse clients without a certificate even on skip_mtls_uri_regex paths), so a
 * certificate from another CA fails the QUIC handshake where HTTPS answers 400 (or serves a skip path).
 */
function quicTlsInfo(conn: QUICConnection): TlsInfo {
  const config = connectionConfig(conn);
  const choice = config[kChoice] as SslChoice | undefined;
  let verify = 'NONE';
  let subject = '';
  let issuer = '';
  let serial = '';
  if (choice?.mtls === true) {
    // Leaf first, then the certificates the client sent after it (quiche's peer_cert_chain). A certificate here
    // passed BoringSSL's check against client.ca: under quic-fixes.ts fix 4 a failed check fails the handshake.
    const chain = conn.getRemoteCertsChain();
    if (chain.length > 0) {
      const leaf = new X509Certificate(chain[0]!);
      const sent = chain.slice(1).map((der) => new X509Certificate(der));
      // client.depth as nginx's ssl_verify_depth, with HTTPS's reason for a chain past it.
      verify = sentChainWithinDepth(choice, leaf, sent) ? 'SUCCESS' : 'FAILED:unable to get local issuer certificate';
      const legacy = leaf.toLegacyObject();
      subject = distinguishedName(legacy.subject as unknown as Record<string, string>);
      issuer = distinguishedName(legacy.issuer as unknown as Record<string, string>);
      serial = legacy.serialNumber;
    }
  }
  return {
    servername: (config[kSni] as string | undefined) ?? '',
    protocol: 'TLSv1.3',
    cipher: '',
    clientVerify: verify,
    clientSubject: subject,
    clientIssuer: issuer,
    clientSerial: serial,
    sslId: choice?.sslId ?? '',
    skipMtls: choice?.skipMtls ?? null,
    mtlsRequired: choice?.mtls ?? false,
  };
}
