// TLS accept for the HTTPS listener: the ClientHello is read off the TCP connection first (src/tls/client-hello.ts),
// the ssl object is picked by its SNI (fallback_sni without one), and node's TLS server then starts the handshake
// with that object's own SecureContext (why not node's SNICallback: src/tls/handshake-context.ts).
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../../src/observability/logger.ts';
import { CLIENT_HELLO_MAX, parseClientHello } from '../../src/tls/client-hello.ts';
import { handshakeContext } from '../../src/tls/handshake-context.ts';
import { keepClientChain, tagSslChoice, type CertificateStore, type SslChoice } from '../../src/tls/store.ts';

export interface TlsAcceptOptions {
  readonly certificates: () => CertificateStore | null;
  /** apisix.ssl.fallback_sni: the ssl object for clients that send no SNI. */
  readonly fallbackSni?: string;
  /** Bound on the whole handshake, ClientHello included (client_header_timeout). */
  readonly handshakeMs: number;
  readonly alpn: string[];
  /** A connection whose handshake completed, tagged with its ssl object. */
  readonly onSecure: (socket: tls.TLSSocket) => void;
  readonly logger: Logger;
}

// The ssl object picked for a connection and the ClientHello bytes read so far, kept on the TCP socket; node's
// TLS socket keeps that socket as `_parent`.
const kChoice = Symbol('switchyard.peekedSsl');
const kHello = Symbol('switchyard.helloBytes');
/** The peek found no usable SNI (none, or one the parser refused), so fallback_sni's object was picked. */
const kNoSni = Symbol('switchyard.noSni');
type Raw = net.Socket & { [kChoice]?: SslChoice; [kHello]?: Buffer; [kNoSni]?: boolean };
type Wrapped = tls.TLSSocket & { _parent?: Raw | null };

/** Servers whose SecureContext starts a handshake (node reads it in its 'connection' listener). */
type ContextServer = tls.Server & { _sharedCreds: tls.SecureContext; requestCert: boolean };

function choiceOf(socket: tls.TLSSocket): SslChoice | undefined {
  return (socket as Wrapped)._parent?.[kChoice];
}

/**
 * Runs in the handshake (node calls it with the TLS socket as `this`) for clients with SNI; the context stays the
 * one the handshake started with. The chain a client sends must be read before the handshake ends (client.depth).
 * OpenSSL seeing a server name the peek did not accept (not a host name) fails the handshake, as an SNI without a
 * certificate does: fallback_sni is only for clients that send none.
 */
function onServername(this: tls.TLSSocket, name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void {
  const raw = (this as Wrapped)._parent;
  if (raw?.[kNoSni] === true) {
    cb(new Error(`no certificate for SNI ${name}`));
    return;
  }
  if (raw?.[kChoice]?.mtls === true) keepClientChain(this);
  cb(null);
}

/** The same for clients without SNI (no SNICallback runs): key logging starts inside every handshake. */
function onKeylog(_line: Buffer, socket: tls.TLSSocket): void {
  if (choiceOf(socket)?.mtls === true) keepClientChain(socket);
}

function onPeekTimeout(this: net.Socket): void {
  this.destroy();
}

function onRawError(this: net.Socket): void {
  this.destroy();
}

/** A 'data' listener (one per listener, `this` is the connection) collecting the ClientHello. */
function helloReader(handOff: (raw: Raw, hello: Buffer, sni: string | undefined) => void): (this: Raw, chunk: Buffer) => void {
  return function (this: Raw, chunk: Buffer): void {
    const buf = this[kHello] === undefined ? chunk : Buffer.concat([this[kHello], chunk]);
    const hello = parseClientHello(buf);
    // The parser gives up (no SNI) past CLIENT_HELLO_MAX; the length check bounds what a stalled client holds.
    if (hello.kind === 'need' && buf.length < CLIENT_HELLO_MAX) {
      this[kHello] = buf;
      return;
    }
    this[kHello] = undefined;
    handOff(this, buf, hello.kind === 'tls' ? hello.sni : undefined);
  };
}

export class TlsAcceptor {
  /** The listening server; the TLS server below never listens itself. */
  readonly server: net.Server;
  private readonly tls: ContextServer;
  private readonly opts: TlsAcceptOptions;
  /** Connections still sending their ClientHello (a forced close ends them too). */
  private readonly peeking = new Set<net.Socket>();
  private readonly onHello: (this: Raw, chunk: Buffer) => void;
  private readonly onPeekClose: (this: net.Socket) => void;
  private keylog = false;

  constructor(opts: TlsAcceptOptions) {
    this.opts = opts;
    this.tls = tls.createServer({
      SNICallback: onServername,
      ALPNProtocols: opts.alpn,
      handshakeTimeout: opts.handshakeMs,
      noDelay: true,
      // The 400 for a missing or bad client certificate is an HTTP answer (skip_mtls_uri_regex paths need none).
      rejectUnauthorized: false,
    }) as ContextServer;
    this.tls.on('secureConnection', (socket: tls.TLSSocket) => {
      const choice = choiceOf(socket);
      if (choice !== undefined) tagSslChoice(socket, choice);
      opts.onSecure(socket);
    });
    this.tls.on('tlsClientError', (err, socket) => {
      opts.logger.debug?.({ err: err.message, remote: socket.remoteAddress }, 'TLS handshake failed');
    });
    this.onHello = helloReader((raw, hello, sni) => this.handOff(raw, hello, sni));
    const peeking = this.peeking;
    this.onPeekClose = function (this: net.Socket): void {
      peeking.delete(this);
    };
    this.server = net.createServer({ noDelay: true }, (raw) => {
      this.peeking.add(raw);
      raw.on('error', onRawError);
      raw.once('close', this.onPeekClose);
      raw.setTimeout(opts.handshakeMs, onPeekTimeout);
      raw.on('data', this.onHello);
    });
  }

  private handOff(raw: Raw, hello: Buffer, sni: string | undefined): void {
    raw.off('data', this.onHello);
    raw.off('close', this.onPeekClose);
    raw.setTimeout(0, onPeekTimeout);
    raw.off('timeout', onPeekTimeout);
    this.peeking.delete(raw);
    // An SNI without a certificate fails the handshake, as APISIX's: fallback_sni stands in only for clients that
    // send no SNI.
    const name = sni ?? this.opts.fallbackSni;
    const choice = name === undefined ? undefined : this.opts.certificates()?.lookup(name);
    raw[kChoice] = choice;
    raw[kNoSni] = sni === undefined;
    if (choice?.mtls === true && sni === undefined && !this.keylog) {
      this.keylog = true;
      this.tls.on('keylog', onKeylog);
    }
    // The TLS socket reads what is buffered on the TCP socket before its own reads: the ClientHello goes back.
    raw.pause();
    raw.unshift(hello);
    // Node's 'connection' listener reads the server's context and requestCert synchronously, so setting them
    // just before handing the socket over applies them to this connection only.
    this.tls._sharedCreds = handshakeContext(choice?.context);
    this.tls.requestCert = choice?.mtls ?? false;
    this.tls.emit('connection', raw);
  }

  /** Ends the connections still in their ClientHello; the listening server is closed by the caller. */
  dropPending(): void {
    for (const s of this.peeking) s.destroy();
    this.peeking.clear();
  }
}
