// Fixes for two defects of @matrixai/quic 2.0.9 (the QUIC transport under HTTP/3) that real HTTP/3 clients
// hit, kept here as a small wrapper instead of an edited copy of the library:
// 1. HTTP/3 clients open their control, QPACK and request streams in the same flight as the handshake. The
//    library's processStreams() treats "not running yet" like "stopping" and shuts down the write side of
//    those streams, which throws InvalidStreamState for receive-only unidirectional streams and kills the
//    connection. Fix: while the connection is starting, leave new streams buffered in quiche and process them
//    as soon as start() completes; only a stopping connection rejects new streams.
// 2. A ClientHello spanning two Initial packets (Chromium's, with post-quantum key shares) reaches the socket
//    as two datagrams with the same DCID; both start an accept (the first is still awaiting its token check),
//    so two half-open connections race and the handshake times out. Fix: a socket subclass that parks later
//    datagrams for a DCID whose accept is under way and delivers them once the connection is registered.
// The wrapper checks the library version it was written against, so an upgrade is a deliberate review.
import { createRequire } from 'node:module';
import { QUICConnection, QUICConnectionId, QUICSocket, native } from '@matrixai/quic';

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

/** Installs fix 1 on QUICConnection (idempotent). Throws on a library version it was not written for. */
export function applyQuicFixes(): void {
  if (applied) return;
  if (QUIC_LIBRARY_VERSION !== FIXED_FOR) {
    throw new Error(`protocols/http3/quic-fixes.ts was written for @matrixai/quic ${FIXED_FOR}, found ${QUIC_LIBRARY_VERSION}: review the fixes`);
  }
  applied = true;
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

/**
 * A QUICSocket that never starts two accepts for one DCID (fix 2). `beforeAccept` runs before a new
 * connection is accepted (the listener refreshes the certificate there).
 */
export class PatchedQUICSocket extends QUICSocket {
  /** DCID (hex) of an accept under way -> datagrams that arrived meanwhile. */
  private readonly accepting = new Map<string, Array<[Buffer, RemoteInfo]>>();
  beforeAccept: (() => void) | null = null;
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

  private async route(data: Buffer, remote: RemoteInfo): Promise<void> {
    let dcid: Uint8Array;
    try {
      dcid = native.quiche.Header.fromSlice(data, native.quiche.MAX_CONN_ID_LEN).dcid;
    } catch {
      return;
    }
    const key = Buffer.from(dcid).toString('hex');
    const parked = this.accepting.get(key);
    if (parked !== undefined) {
      parked.push([data, remote]);
      return;
    }
    const map = (this as unknown as { connectionMap: ConnectionMapInternals }).connectionMap;
    if (map.get(new QUICConnectionId(dcid)) !== undefined) {
      await this.original(data, remote);
      return;
    }
    this.beforeAccept?.();
    const queue: Array<[Buffer, RemoteInfo]> = [];
    this.accepting.set(key, queue);
    try {
      await this.original(data, remote);
    } finally {
      if (this.accepting.get(key) === queue) {
        // No connection came of it (a Retry was sent, or the token failed): the parked datagrams take the
        // ordinary path (a second Retry is harmless; the client keeps the first).
        this.accepting.delete(key);
        for (const [d, r] of queue) await this.original(d, r);
      }
    }
  }
}

async function deliver(conn: Conn, queue: Array<[Buffer, RemoteInfo]>): Promise<void> {
  try {
    for (const [d, r] of queue) await conn.recv(d, { host: r.address, port: r.port });
  } catch {
    // recv errors surface as connection error events; the connection closes itself.
  }
}
