// One accepted TCP connection, end to end:
//   [PROXY header] -> [TLS termination (ClientHello peek, then the handshake from the SNI's ssl object, its client.ca
//   enforced) | ClientHello peek for passthrough SNI] -> route match ->
//   preread plugins -> pick + connect (timeout, re-pick on failure) -> [PROXY header to upstream] ->
//   [TLS to upstream] -> pipe both ways (backpressure, half-close, idle timeout) -> stream log plugins.
// Bytes read before the upstream is connected are buffered (bounded) and replayed, never consumed.
import type net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Balancer, Endpoint } from '../../src/upstream/balancer.ts';
import type { UpstreamRuntime } from '../../src/upstream/upstream.ts';
import { normalizeAddr } from '../../stream-routes/router.ts';
import type { StreamRoute, StreamRuntime } from '../../stream-routes/types.ts';
import { xrpcName, type XrpcHandler } from '../../stream-routes/xrpc.ts';
import { admit, logSession, upstreamTimeouts } from './admission.ts';
import { handshakeContext } from '../../src/tls/handshake-context.ts';
import { clientCertRefusal, distinguishedName, keepClientChain } from '../../src/tls/store.ts';
import { parseClientHello, CLIENT_HELLO_MAX } from '../../src/tls/client-hello.ts';
import type { TcpListenSpec } from './conf.ts';
import { connectUpstream, type ConnectResult } from './connect.ts';
import { PEEK_LIMIT, type SessionDeps } from './options.ts';
import { Prebuffer } from './prebuffer.ts';
import { buildProxyHeader, parseProxyHeader } from './proxy-protocol.ts';
import { StreamSession } from './session.ts';
import { destroySelf, Splice, UPSTREAM_ONREAD, type SpliceOwner } from './splice.ts';

/** SNI callback of a handshake whose ClientHello peek found no usable SNI: any server name OpenSSL sees is refused. */
function refuseServername(name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void {
  cb(new Error(`no certificate for SNI ${name}`));
}

/** Live sessions of a listener group, for graceful and forced close. */
export interface LiveSet {
  add(s: Duplex): void;
  delete(s: Duplex): void;
}

interface Connected {
  readonly socket: net.Socket;
  readonly raw: net.Socket;
  readonly endpoint: Endpoint;
  readonly balancer: Balancer;
  readonly startedAt: number;
  /** The socket reads through UPSTREAM_ONREAD (paused until the splice starts). */
  readonly userReads: boolean;
}

function wait(ms: number): { promise: Promise<void>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/**
 * A TCP session and what its close needs once it is proxied (balancer report, log), kept on the session: a
 * separate object per session would cost its header and slots for the session and its route again.
 */
class TcpSession extends StreamSession {
  runtime: StreamRuntime | null = null;
  endpoint: Endpoint | null = null;
  balancer: Balancer | null = null;
  /** Whole ms of performance.now() at connect: an integer is stored inline, a fraction as a heap object. */
  connectedAt = 0;
  /** The upstream TCP socket under TLS, for its byte count (the same socket without TLS). */
  upstreamRaw: net.Socket | null = null;
}

export class TcpSessionHandler implements SpliceOwner<TcpSession> {
  private readonly spec: TcpListenSpec;
  private readonly deps: SessionDeps;
  private readonly live: LiveSet;
  /** 'close' listener shared by every socket of this handler (no closure per session). */
  private readonly forget: (this: Duplex) => void;
  /** The last local address seen, normalized: sessions share its string instead of each holding a copy. */
  private localAddr = '';

  constructor(spec: TcpListenSpec, deps: SessionDeps, live: LiveSet) {
    this.spec = spec;
    this.deps = deps;
    this.live = live;
    this.forget = function (this: Duplex) {
      live.delete(this);
    };
  }

  handle(socket: net.Socket): void {
    socket.on('error', destroySelf);
    this.live.add(socket);
    socket.on('close', this.forget);
    this.run(socket).catch((err: unknown) => {
      this.deps.logger.error({ err: (err as Error)?.message ?? String(err) }, 'stream session failed');
      socket.destroy();
    });
  }

  private async run(socket: net.Socket): Promise<void> {
    const { logger, timeouts } = this.deps;
    const runtime = this.deps.getRuntime();
    if (runtime === null) {
      logger.warn('stream connection closed: configuration not loaded yet');
      socket.destroy();
      return;
    }
    let remoteAddr = normalizeAddr(socket.remoteAddress);
    let remotePort = socket.remotePort ?? 0;
    if (this.spec.proxyProtocol === true) {
      const pp = await this.readProxyHeader(socket);
      if (pp === null) return;
      if (pp.source !== undefined) {
        remoteAddr = normalizeAddr(pp.source.addr);
        remotePort = pp.source.port;
      }
    }

    let downstream: net.Socket = socket;
    let sni: string | undefined;
    let client: tls.PeerCertificate | null = null;
    if (this.spec.tls) {
      const secure = await this.terminateTls(socket, remoteAddr);
      if (secure === null) return;
      downstream = secure.socket;
      sni = secure.sni;
      client = secure.client;
    }

    const pre = new Prebuffer(downstream, PEEK_LIMIT);
    const session = new TcpSession({
      protocol: 'tcp',
      remoteAddr,
      remotePort,
      serverAddr: this.local(socket),
      serverPort: socket.localPort ?? 0,
      buffer: pre,
      peekTimeoutMs: timeouts.peekMs,
    });
    session.sni = sni;
    // nginx stream's $ssl_client_* of a verified client certificate (only mTLS sessions pay for them).
    if (client !== null) {
      session.set('ssl_client_verify', 'SUCCESS');
      session.set('ssl_client_s_dn', distinguishedName(client.subject as unknown as Record<string, string>));
      session.set('ssl_client_i_dn', distinguishedName(client.issuer as unknown as Record<string, string>));
      session.set('ssl_client_serial', client.serialNumber);
    }
    if (!this.spec.tls && runtime.router.hasSniRoutes) session.sni = await this.peekSni(pre);

    const pending = admit(runtime, session);
    // Awaiting a plain value would still cost a microtask: only preread plugins that wait make it a promise.
    const adm = pending instanceof Promise ? await pending : pending;
    if (!adm.ok) {
      logger.info({ remote: remoteAddr, port: session.serverPort, sni: session.sni, route: session.routeId || undefined, reason: adm.reason }, 'stream session closed');
      downstream.destroy();
      this.finish(runtime, adm.route, session, downstream, null);
      return;
    }

    if (downstream.destroyed) {
      this.finish(runtime, adm.route, session, downstream, null);
      return;
    }
    const xrpcProto = xrpcName(adm.route);
    const xrpc = xrpcProto !== undefined ? this.deps.xrpc?.(xrpcProto) : undefined;
    if (xrpc !== undefined) return this.handOver(xrpc, runtime, adm.route, adm.upstream, session, downstream, pre);
    const conn = await this.connect(adm.upstream, session);
    if (conn !== null && downstream.destroyed) {
      // The client left while we were connecting.
      conn.socket.destroy();
      conn.balancer.end?.(conn.endpoint, { latencyMs: performance.now() - conn.startedAt, failed: false });
      this.finish(runtime, adm.route, session, downstream, conn.raw);
      return;
    }
    if (conn === null) {
      session.status = 502;
      logger.warn({ remote: remoteAddr, route: session.routeId, reason: 'failed to connect to any upstream node' }, 'stream session closed');
      downstream.destroy();
      this.finish(runtime, adm.route, session, downstream, null);
      return;
    }
    session.upstreamAddr = conn.endpoint.key;
    this.pipe(runtime, session, downstream, pre, conn, upstreamTimeouts(adm.upstream, timeouts).idleMs);
  }

  private local(socket: net.Socket): string {
    const addr = normalizeAddr(socket.localAddress);
    if (addr === this.localAddr) return this.localAddr;
    this.localAddr = addr;
    return addr;
  }

  /** Reads and strips the PROXY protocol header; null when it is missing or malformed (socket closed). */
  private async readProxyHeader(socket: net.Socket) {
    const pre = new Prebuffer(socket, 2048);
    const deadline = Date.now() + this.deps.timeouts.handshakeMs;
    let want = 1;
    // Each round either completes, fails, or asks for strictly more bytes (bounded by the 2 KiB buffer).
    for (let round = 0; round < 256; round++) {
      const buf = await pre.peek(want, Math.max(1, deadline - Date.now()));
      const r = parseProxyHeader(buf);
      if (r.kind === 'ok') {
        pre.consume(r.length);
        const rest = pre.release();
        if (rest.length > 0) socket.unshift(Buffer.concat(rest));
        return r;
      }
      if (r.kind === 'error' || buf.length < Math.min(want, r.bytes) || pre.ended || Date.now() >= deadline) {
        this.deps.logger.info({ remote: normalizeAddr(socket.remoteAddress), reason: r.kind === 'error' ? r.reason : 'incomplete PROXY protocol header' }, 'stream connection closed');
        socket.destroy();
        return null;
      }
      want = Math.max(r.bytes, buf.length + 1);
    }
    socket.destroy();
    return null;
  }

  /**
   * Reads the ClientHello without consuming it, picks the ssl object by its SNI and runs the handshake from that
   * object's own context (src/tls/handshake-context.ts: every certificate of the object, its ssl_protocols). The
   * SNI returned is the client's ($ssl_server_name, SNI routes). A client that sends no SNI gets fallback_sni's
   * object (the SNI stays unset, as APISIX's); an SNI without a certificate, or no SNI and no fallback, fails the
   * handshake. The peek and the handshake share handshakeMs.
   */
  private async terminateTls(
    socket: net.Socket,
    remote: string,
  ): Promise<{ socket: tls.TLSSocket; sni: string | undefined; client: tls.PeerCertificate | null } | null> {
    const deadline = Date.now() + this.deps.timeouts.handshakeMs;
    const pre = new Prebuffer(socket, CLIENT_HELLO_MAX);
    const sni = await this.peekHello(pre, deadline);
    const hello = pre.release();
    if (sni === null || socket.destroyed) {
      this.deps.logger.info({ remote, reason: 'no TLS ClientHello' }, 'stream connection closed');
      socket.destroy();
      return null;
    }
    // The TLS socket reads what is buffered on the TCP socket before its own reads: the ClientHello goes back.
    if (hello.length > 0) socket.unshift(hello.length === 1 ? hello[0]! : Buffer.concat(hello));
    const name = sni ?? this.deps.fallbackSni;
    const choice = name === undefined ? undefined : this.deps.certificates()?.lookup(name);
    // An ssl object with client.ca asks for a client certificate. A stream has no error answer of its own, so, as
    // APISIX rejects in the handshake on streams, a client sending none fails the handshake (OpenSSL's
    // FAIL_IF_NO_PEER_CERT); one not issued by client.ca, or beyond client.depth, is refused once it completes.
    const mtls = choice?.mtls === true;
    // Without a peeked SNI, OpenSSL may still see a server name the peek refused (not a host name): that must fail
    // as an SNI without a certificate does, not get fallback_sni's object.
    const secure = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext: handshakeContext(choice?.context),
      SNICallback: sni === undefined ? refuseServername : undefined,
      requestCert: mtls,
      rejectUnauthorized: mtls,
    });
    if (mtls) keepClientChain(secure);
    const timer = wait(Math.max(1, deadline - Date.now()));
    let failure = 'TLS handshake failed';
    const ok = await Promise.race([
      new Promise<boolean>((resolve) => {
        secure.once('secure', () => resolve(true));
        secure.once('error', (err: Error) => {
          // OpenSSL's reason, e.g. "peer did not return a certificate" for a client without one under mTLS.
          failure = `TLS handshake failed: ${err.message}`;
          resolve(false);
        });
        secure.once('close', () => resolve(false));
      }),
      timer.promise.then(() => false),
    ]);
    timer.cancel();
    const refused = ok && mtls ? clientCertRefusal(secure, choice) : null;
    if (!ok || refused !== null) {
      this.deps.logger.info({ remote, sni, ssl: choice?.sslId, reason: refused ?? failure }, 'stream connection closed');
      secure.destroy();
      socket.destroy();
      return null;
    }
    secure.on('error', () => secure.destroy());
    return { socket: secure, sni, client: mtls ? secure.getPeerCertificate() : null };
  }

  /** Waits briefly for a TLS ClientHello on a plain port; returns its SNI (TLS passthrough routing). */
  private async peekSni(pre: Prebuffer): Promise<string | undefined> {
    return (await this.peekHello(pre, Date.now() + this.deps.timeouts.sniPeekMs)) ?? undefined;
  }

  /**
   * The SNI of the ClientHello at the head of `pre` (undefined: a ClientHello without a usable one); null when the
   * bytes are not TLS or no complete ClientHello came before `deadline`. Nothing is consumed.
   */
  private async peekHello(pre: Prebuffer, deadline: number): Promise<string | undefined | null> {
    // Any first bytes tell TLS from other protocols; only a TLS record makes us wait for more.
    let want = 1;
    for (let round = 0; round < 64; round++) {
      const buf = await pre.peek(want, Math.max(1, deadline - Date.now()));
      const r = parseClientHello(buf);
      if (r.kind === 'tls') return r.sni;
      if (r.kind === 'not_tls') return null;
      if (buf.length < r.bytes && (pre.ended || Date.now() >= deadline || buf.length >= CLIENT_HELLO_MAX)) return null;
      want = r.bytes;
    }
    return null;
  }

  private async connect(up: UpstreamRuntime, s: StreamSession): Promise<Connected | null> {
    const { connectMs } = upstreamTimeouts(up, this.deps.timeouts);
    const header =
      this.spec.proxyProtocolToUpstream !== undefined
        ? buildProxyHeader(this.spec.proxyProtocolToUpstream, { addr: s.remoteAddr, port: s.remotePort }, { addr: s.serverAddr, port: s.serverPort })
        : null;
    const tlsReq = up.scheme === 'tls' ? { settings: up.tls, clientSni: s.sni } : null;
    const deadline = up.retryTimeoutMs > 0 ? Date.now() + up.retryTimeoutMs : Number.POSITIVE_INFINITY;
    const attempts = up.retries + 1;
    let tried: Set<string> | null = null;
    for (let i = 0; i < attempts; i++) {
      const pick = up.pick({ vars: s.vars, tried });
      if (!pick.ok) break;
      const endpoint = pick.endpoint;
      const balancer = up.balancer;
      balancer.begin?.(endpoint);
      const startedAt = performance.now();
      const r: ConnectResult = await connectUpstream({ endpoint, timeoutMs: connectMs, header, tls: tlsReq, onread: tlsReq === null ? UPSTREAM_ONREAD : undefined });
      if (r.ok) return { socket: r.socket, raw: r.raw, endpoint, balancer, startedAt, userReads: tlsReq === null };
      balancer.end?.(endpoint, { latencyMs: performance.now() - startedAt, failed: true });
      this.deps.logger.warn({ route: s.routeId, node: endpoint.key, reason: r.reason }, 'stream upstream connect failed');
      (tried ??= new Set()).add(endpoint.key);
      if (Date.now() >= deadline) break;
    }
    return null;
  }

  private pipe(
    runtime: StreamRuntime,
    s: TcpSession,
    downstream: net.Socket,
    pre: Prebuffer,
    conn: Connected,
    idleMs: number,
  ): void {
    const up = conn.socket;
    // Both sockets leave `live` in spliceClosed: a second 'close' listener beside the splice's would make the
    // socket's listener list an array (about 250 bytes per session with its backing store).
    this.live.add(up);
    const ended = pre.ended;
    const early = pre.release();
    // The peek buffer and its listeners are not needed for the rest of the session.
    s.detachBuffer();
    // Removed after release() took the Prebuffer's 'close' listener: `forget` is then the only one, and a
    // socket's preshaped listener table takes a removal without a change of shape.
    if (downstream.listenerCount('close', this.forget) > 0) downstream.off('close', this.forget);
    s.runtime = runtime;
    s.endpoint = conn.endpoint;
    s.balancer = conn.balancer;
    s.connectedAt = Math.floor(conn.startedAt);
    s.upstreamRaw = conn.raw;
    new Splice(downstream, up, this, s).start(early, ended, idleMs, conn.userReads);
  }

  spliceClosed(sp: Splice<TcpSession>, failed: boolean): void {
    this.live.delete(sp.up);
    this.live.delete(sp.down);
    const s = sp.state;
    s.balancer!.end?.(s.endpoint!, { latencyMs: performance.now() - s.connectedAt, failed });
    this.finish(s.runtime!, s.route, s, sp.down, s.upstreamRaw);
  }

  /** xRPC: the protocol handler owns the connection from here on; the session is logged when it closes. */
  private async handOver(
    xrpc: XrpcHandler,
    runtime: StreamRuntime,
    route: StreamRoute,
    upstream: UpstreamRuntime,
    s: StreamSession,
    downstream: net.Socket,
    pre: Prebuffer,
  ): Promise<void> {
    const ended = pre.ended;
    const buffered = pre.release();
    const { connectMs, idleMs } = upstreamTimeouts(upstream, this.deps.timeouts);
    s.status = await xrpc.serve({ socket: downstream, buffered, ended, route, upstream, runtime, ctx: s, connectMs, idleMs });
    this.finish(runtime, route, s, downstream, null);
  }

  /** Byte counts are the client's payload bytes (decrypted on tls listeners). */
  private finish(runtime: StreamRuntime, route: StreamRoute | null, s: StreamSession, downstream: net.Socket, upstreamRaw: net.Socket | null): void {
    s.bytesIn = downstream.bytesRead;
    s.bytesOut = downstream.bytesWritten;
    logSession(runtime, route, s);
    if (this.deps.logger.isLevelEnabled('debug')) this.deps.logger.debug(
      { route: s.routeId || undefined, remote: s.remoteAddr, upstream: s.upstreamAddr, status: s.status, bytesIn: s.bytesIn, bytesOut: s.bytesOut, upstreamBytes: upstreamRaw?.bytesWritten },
      'stream session done',
    );
  }
}
