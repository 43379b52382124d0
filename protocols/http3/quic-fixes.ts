// Fixes for two defects of @matrixai/quic 2.0.9 (the QUIC transport under HTTP/3) that real HTTP/3 clients
// hit, and for two missing features (3, 4), kept here as a small wrapper instead of an edited copy of the library:
// 1. HTTP/3 clients open their control, QPACK and request streams in the same flight as the handshake. The
//    library's processStreams() treats "not running yet" like "stopping" and shuts down the write side of
//    those streams, which throws InvalidStreamState for receive-only unidirectional streams and kills the
//    connection. Fix: while the connection is starting, leave new streams buffered in quiche and process them
//    as soon as start() completes; only a stopping connection rejects new streams.
// 2. A ClientHello spanning two Initial packets (Chromium's, with post-quantum key shares) reaches the socket
//    as two datagrams with the same DCID; both start an accept (the first is still awaiting its token check),
//    so two half-open connections race and the handshake times out. Fix: a socket subclass that parks later
//    datagrams for a DCID whose accept is under way and delivers them once the connection is registered.
// 3. Certificates by SNI: quiche takes the certificate with the connection's configuration, which the library
//    copies from the server's when it accepts the connection, and the binding has no SNI callback. Fix: the
//    socket holds a new DCID's Initial datagrams until the client's ClientHello is complete (initial.ts reads
//    it), asks the listener for that SNI's configuration, and the server subclass hands it to that one accept.
// 4. Optional client certificates: with `verifyPeer` the binding builds its TLS context with BoringSSL's
//    SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, so a server that asks for a certificate fails the
//    handshake of every client that sends none (and its `verifyCallback` mode accepts any certificate but still
//    requires one). HTTPS asks without requiring (the 400 is an HTTP answer; skip_mtls_uri_regex paths need no
//    certificate). Fix: a configuration built with `verifyPeer` and no `verifyCallback` is passed through
//    quiche's verify_peer(true), which sets SSL_VERIFY_PEER alone with BoringSSL's own chain check against `ca`:
//    a certificate is requested and verified if sent, none is accepted. FAIL_IF_NO_PEER_CERT means nothing to a
//    client, so client configurations behave as before.
// The wrapper checks the library version it was written against, so an upgrade is a deliberate review.
import { createRequire } from 'node:module';
import { QUICConnection, QUICConnectionId, QUICServer, QUICSocket, native } from '@matrixai/quic';
import type { QUICConfig } from '@matrixai/quic';
import { ClientHelloAssembler } from './initial.ts';

const require_ = createRequire(import.meta.url);
export const QUIC_LIBRARY_VERSION: string = (require_('@matrixai/quic/package.json') as { version: string }).version;
const FIXED_FOR = '2.0.9';

// The library's StartStop mixin keeps its state under these symbols (exported by @matrixai/async-init).
import { startStop } from '@matrixai/async-init';

interface ConnectionInternals {
  processStreams(): void;
  send(): Promise<void>;
  recvLock: { withF<T>(f: () => Promise<T>): Promise<T> };
  [startStop.running]: boolean;
  [startStop.status]: string | null;
}

const kDeferred = Symbol('switchyard.deferredStreams');
type Deferring = ConnectionInternals & { [kDeferred]?: boolean };

let applied = false;

type NativeConfig = ReturnType<typeof native.quiche.Config.withBoringSslCtx>;
type ConfigClass = typeof native.quiche.Config;

/** Installs fixes 1 and 4 (idempotent). Throws on a library version it was not written for. */
export function applyQuicFixes(): void {
  if (applied) return;
  if (QUIC_LIBRARY_VERSION !== FIXED_FOR) {
    throw new Error(`protocols/http3/quic-fixes.ts was written for @matrixai/quic ${FIXED_FOR}, found ${QUIC_LIBRARY_VERSION}: review the fixes`);
  }
  applied = true;
  // Fix 4. The library builds every connection's native configuration with `quiche.Config.withBoringSslCtx`
  // (config.js buildQuicheConfig, its only use of the class; it passes verifyPeer and whether a verifyCallback
  // is set), looked up at each call. The binding's static is read-only, so the class is replaced on the module
  // object by a subclass with its own factory.
  const quiche = native.quiche as { Config: ConfigClass };
  const Original = quiche.Config;
  quiche.Config = class OptionalPeerCertConfig extends Original {
    static override withBoringSslCtx(verifyPeer: boolean, verifyAllowFail: boolean, ...rest: Parameters<ConfigClass['withBoringSslCtx']> extends [boolean, boolean, ...infer R] ? R : never): NativeConfig {
      const config = Original.withBoringSslCtx(verifyPeer, verifyAllowFail, ...rest);
      if (verifyPeer && !verifyAllowFail) config.verifyPeer(true);
      return config;
    }
  };
  const proto = QUICConnection.prototype as unknown as Deferring & { start: (...a: unknown[]) => Promise<void> };
  const processStreams = proto.processStreams;
  proto.processStreams = function (this: Deferring): void {
    if (this[startStop.running] === false && this[startStop.status] !== 'stopping') {
      this[kDeferred] = true;
      return;
    }
    processStreams.call(this);
  };
  const start = proto.start;
  proto.start = async function (this: Deferring, ...args: unknown[]): Promise<void> {
    await start.apply(this, args);
    if (this[kDeferred] !== true) return;
    this[kDeferred] = false;
    await this.recvLock.withF(async () => {
      this.processStreams();
      await this.send();
    });
  };
}

type RemoteInfo = { address: string; port: number };
type Conn = { recv(data: Buffer, remote: { host: string; port: number }): Promise<void> };
interface ConnectionMapInternals {
  get(id: QUICConnectionId): Conn | undefined;
  set(id: QUICConnectionId, conn: Conn): unknown;
}

/** Settings of one connection that differ from the server's (its certificate), plus the listener's own tags. */
export type ConnectionConfig = Partial<QUICConfig> & { readonly [tag: symbol]: unknown };

// Bounds of the datagrams held while a ClientHello is incomplete: per DCID (count, bytes, age) and DCIDs held at
// once, so a flood of partial Initials cannot grow memory (the datagrams plus their decrypted CRYPTO data: about
// 2 x HELLO_PENDING x HELLO_BYTES, 8 MiB). A ClientHello fits 1-3 datagrams (Chromium's post-quantum one: 2);
// its datagrams arrive together.
export const HELLO_DATAGRAMS = 10;
export const HELLO_BYTES = 16 * 1024;
export const HELLO_AGE_MS = 3000;
export const HELLO_PENDING = 256;
/** Datagrams parked for one accept under way (the accept registers its connection within microseconds). */
const ACCEPT_PARKED = 32;

interface PendingHello {
  readonly assembler: ClientHelloAssembler;
  readonly datagrams: Array<[Buffer, RemoteInfo]>;
  bytes: number;
  readonly since: number;
}

/**
 * A QUICSocket that never starts two accepts for one DCID (fix 2) and accepts a client's connection only once
 * its ClientHello is read, with the configuration `helloConfig` returns for its SNI (fix 3). Without
 * `helloConfig` every connection gets the server's configuration.
 */
export class PatchedQUICSocket extends QUICSocket {
  /** DCID (hex) of an accept under way -> datagrams that arrived meanwhile. */
  private readonly accepting = new Map<string, Array<[Buffer, RemoteInfo]>>();
  /** DCID (hex) -> datagrams of an incomplete ClientHello (insertion order = age). */
  private readonly hellos = new Map<string, PendingHello>();
  /** DCID (hex) -> the configuration of the accept under way (taken by ConfiguredQUICServer). */
  private readonly acceptConfigs = new Map<string, ConnectionConfig>();
  private sweep: NodeJS.Timeout | null = null;
  helloConfig: ((sni: string | undefined) => ConnectionConfig) | null = null;
  private readonly original: (data: Buffer, remote: RemoteInfo) => Promise<void>;

  constructor(opts: ConstructorParameters<typeof QUICSocket>[0]) {
    super(opts);
    const self = this as unknown as { handleSocketMessage: (data: Buffer, remote: RemoteInfo) => Promise<void> };
    this.original = self.handleSocketMessage;
    self.handleSocketMessage = (data, remote) => this.route(data, remote);
    const map = (this as unknown as { connectionMap: ConnectionMapInternals }).connectionMap;
    const set = map.set.bind(map);
    // The connection registers itself before its handshake can complete, and the handshake needs the parked
    // datagrams: deliver them right after registration (next macrotask, so the first datagram goes first).
    map.set = (id, conn) => {
      const r = set(id, conn);
      const queue = this.accepting.get(Buffer.from(id).toString('hex'));
      if (queue !== undefined) {
        this.accepting.delete(Buffer.from(id).toString('hex'));
        setImmediate(() => void deliver(conn, queue));
      }
      return r;
    };
  }

  /** The configuration chosen for the accept of this DCID, if any (read once by the server). */
  takeAcceptConfig(dcid: Uint8Array): ConnectionConfig | undefined {
    const key = Buffer.from(dcid).toString('hex');
    const config = this.acceptConfigs.get(key);
    this.acceptConfigs.delete(key);
    return config;
  }

  /** Datagrams held for incomplete ClientHellos (tests watch the bounds). */
  get pendingHellos(): { dcids: number; datagrams: number; bytes: number } {
    let datagrams = 0;
    let bytes = 0;
    for (const h of this.hellos.values()) {
      datagrams += h.datagrams.length;
      bytes += h.bytes;
    }
    return { dcids: this.hellos.size, datagrams, bytes };
  }

  private async route(data: Buffer, remote: RemoteInfo): Promise<void> {
    let header: ReturnType<typeof native.quiche.Header.fromSlice>;
    try {
      header = native.quiche.Header.fromSlice(data, native.quiche.MAX_CONN_ID_LEN);
    } catch {
      return;
    }
    const key = Buffer.from(header.dcid).toString('hex');
    const parked = this.accepting.get(key);
    if (parked !== undefined) {
      if (parked.length < ACCEPT_PARKED) parked.push([data, remote]);
      return;
    }
    const map = (this as unknown as { connectionMap: ConnectionMapInternals }).connectionMap;
    if (map.get(new QUICConnectionId(header.dcid)) !== undefined) {
      await this.original(data, remote);
      return;
    }
    // Only an Initial with a retry token can become a connection (the server answers the others with a Retry
    // or drops them), so only those wait for their ClientHello.
    if (this.helloConfig === null || header.ty !== native.quiche.Type.Initial || header.token === undefined || header.token.byteLength === 0) {
      await this.accept(key, [[data, remote]], undefined);
      return;
    }
    let pending = this.hellos.get(key);
    if (pending === undefined) {
      this.expire(Date.now());
      // Full: the oldest attempt makes room (a flood displaces itself; refusing new DCIDs would shut out every
      // client, even those whose ClientHello fits one datagram and is never held).
      if (this.hellos.size >= HELLO_PENDING) this.forget(this.hellos.keys().next().value!);
      pending = { assembler: new ClientHelloAssembler(header.dcid), datagrams: [], bytes: 0, since: Date.now() };
      this.hellos.set(key, pending);
      this.sweep ??= setInterval(() => this.expire(Date.now()), HELLO_AGE_MS / 3).unref();
    }
    pending.datagrams.push([data, remote]);
    pending.bytes += data.length;
    const progress = pending.assembler.add(data);
    if (progress.kind === 'need') {
      // Over its bounds the attempt is dropped; the client's retransmissions start a new one.
      if (pending.datagrams.length >= HELLO_DATAGRAMS || pending.bytes > HELLO_BYTES) this.forget(key);
      return;
    }
    this.forget(key);
    // An unreadable ClientHello is treated as one without SNI; quiche decides whether it is a handshake at all.
    await this.accept(key, pending.datagrams, this.helloConfig(progress.kind === 'hello' ? progress.sni : undefined));
  }

  private async accept(key: string, datagrams: Array<[Buffer, RemoteInfo]>, config: ConnectionConfig | undefined): Promise<void> {
    const queue = datagrams.slice(1);
    this.accepting.set(key, queue);
    if (config !== undefined) this.acceptConfigs.set(key, config);
    try {
      await this.original(datagrams[0]![0], datagrams[0]![1]);
    } finally {
      this.acceptConfigs.delete(key);
      if (this.accepting.get(key) === queue) {
        // No connection came of it (a Retry was sent, or the token failed): the parked datagrams take the
        // ordinary path (a second Retry is harmless; the client keeps the first).
        this.accepting.delete(key);
        for (const [d, r] of queue) await this.original(d, r);
      }
    }
  }

  private forget(key: string): void {
    this.hellos.delete(key);
    if (this.hellos.size === 0 && this.sweep !== null) {
      clearInterval(this.sweep);
      this.sweep = null;
    }
  }

  /** Drops held ClientHellos older than HELLO_AGE_MS (the map is in arrival order). */
  private expire(now: number): void {
    for (const [key, h] of this.hellos) {
      if (now - h.since < HELLO_AGE_MS) break;
      this.forget(key);
    }
  }

  override async stop(opts?: Parameters<QUICSocket['stop']>[0]): Promise<void> {
    for (const key of [...this.hellos.keys()]) this.forget(key);
    await super.stop(opts);
  }
}

async function deliver(conn: Conn, queue: Array<[Buffer, RemoteInfo]>): Promise<void> {
  try {
    for (const [d, r] of queue) await conn.recv(d, { host: r.address, port: r.port });
  } catch {
    // recv errors surface as connection error events; the connection closes itself.
  }
}

type AcceptConnection = (remoteInfo: unknown, header: { dcid: Uint8Array }, dcid: unknown, data: unknown) => Promise<unknown>;

/**
 * A QUICServer whose accepts take the configuration PatchedQUICSocket chose for the DCID (fix 3). The library
 * copies `this.config` into the new connection after awaiting the retry token's check, so changing the server's
 * configuration per accept would race between concurrent accepts; instead that accept runs with a `this` that
 * reads the connection's `config` and is the server for everything else (reads, writes and events).
 */
export class ConfiguredQUICServer extends QUICServer {
  acceptConnection(...args: Parameters<AcceptConnection>): Promise<unknown> {
    const accept = (QUICServer.prototype as unknown as { acceptConnection: AcceptConnection }).acceptConnection;
    const socket = (this as unknown as { socket: QUICSocket }).socket;
    const override = socket instanceof PatchedQUICSocket ? socket.takeAcceptConfig(args[1].dcid) : undefined;
    if (override === undefined) return accept.apply(this, args);
    const config = { ...(this as unknown as { config: QUICConfig }).config, ...override };
    const view = new Proxy(this, { get: (server, prop) => (prop === 'config' ? config : Reflect.get(server, prop)) });
    return accept.apply(view, args);
  }
}

/** The configuration a connection was created with (the library keeps it; ConnectionConfig tags ride along). */
export function connectionConfig(conn: QUICConnection): Readonly<Record<string | symbol, unknown>> {
  return (conn as unknown as { config: Record<string | symbol, unknown> }).config;
}
