// The forwarding phase of a TCP stream session: bytes both ways between the client and its upstream with
// backpressure (a write that returns false pauses the source until the other side drains), half-close (a
// FIN is passed on, the other direction keeps flowing), an idle timeout, and one callback once both
// sockets are closed.
//
// Memory is the point of this file: an idle MQTT client holds a session for hours, so everything a session
// keeps after its CONNECT peek counts tens of thousands of times. Readable.pipe() costs two sets of about a
// dozen closures plus once-wrappers per session; here the listeners are module-level functions shared by
// every session, which find their session through one symbol-keyed slot on the socket. Only the client
// socket carries the idle timer: every forwarded byte is either read from it or written to it, so its
// timer sees all the activity nginx's proxy_timeout counts.
import type net from 'node:net';
import type { Duplex } from 'node:stream';

const SPLICE = Symbol('swy.stream.splice');

interface SplicedSocket extends net.Socket {
  [SPLICE]?: Splice<unknown>;
}

/** Told once, when both sockets of the splice are closed. */
export interface SpliceOwner<S> {
  spliceClosed(splice: Splice<S>, failed: boolean): void;
}

export class Splice<S = unknown> {
  readonly down: net.Socket;
  readonly up: net.Socket;
  /** What the owner needs at close time (the session, its route and node), kept for it. */
  readonly state: S;
  private readonly owner: SpliceOwner<S>;
  private open = 2;
  private failed = false;

  constructor(down: net.Socket, up: net.Socket, owner: SpliceOwner<S>, state: S) {
    this.down = down;
    this.up = up;
    this.owner = owner;
    this.state = state;
  }

  /**
   * Starts forwarding. `early` are client bytes read before the upstream was connected (replayed first);
   * `clientEnded` says the client already half-closed while they were read. The client socket must be
   * paused (Prebuffer.release leaves it so).
   */
  start(early: readonly Buffer[], clientEnded: boolean, idleMs: number): void {
    const { down, up } = this;
    (down as SplicedSocket)[SPLICE] = this;
    (up as SplicedSocket)[SPLICE] = this;
    if (up.listenerCount('error', destroySelf) === 0) up.on('error', destroySelf);
    if (down.listenerCount('error', destroySelf) === 0) down.on('error', destroySelf);
    up.on('close', onClose);
    down.on('close', onClose);
    up.on('data', onData);
    up.on('end', onEnd);
    up.on('drain', onDrain);
    down.on('drain', onDrain);
    // setTimeout(ms, cb) would wrap cb in a once() closure per session.
    down.setTimeout(idleMs);
    down.on('timeout', onTimeout);

    let flowing = true;
    for (const c of early) flowing = up.write(c);
    if (clientEnded) up.end();
    else {
      down.on('data', onData);
      down.on('end', onEnd);
      // Otherwise the upstream's drain resumes the client.
      if (flowing) down.resume();
    }
  }

  closed(sock: net.Socket, hadError: boolean): void {
    if (hadError) this.failed = true;
    if (--this.open === 0) {
      (this.down as SplicedSocket)[SPLICE] = undefined;
      (this.up as SplicedSocket)[SPLICE] = undefined;
      this.owner.spliceClosed(this, this.failed);
      return;
    }
    // One side is gone for good: flush what is queued for the other, then close it.
    const other = sock === this.down ? this.up : this.down;
    if (hadError || other.writableFinished) other.destroy();
    else {
      other.end();
      other.once('finish', destroySelf);
    }
  }
}

function peerOf(sp: Splice<unknown>, sock: net.Socket): net.Socket {
  return sock === sp.down ? sp.up : sp.down;
}

// hot path
function onData(this: SplicedSocket, chunk: Buffer): void {
  const sp = this[SPLICE];
  if (sp === undefined) return;
  const peer = peerOf(sp, this);
  // A peer that is gone or half-closed takes no more bytes; close handling tears the session down.
  if (peer.writable && !peer.write(chunk)) this.pause();
}

function onDrain(this: SplicedSocket): void {
  const sp = this[SPLICE];
  if (sp !== undefined) peerOf(sp, this).resume();
}

function onEnd(this: SplicedSocket): void {
  const sp = this[SPLICE];
  if (sp === undefined) return;
  const peer = peerOf(sp, this);
  if (!peer.destroyed) peer.end();
}

function onClose(this: SplicedSocket, hadError: boolean): void {
  this[SPLICE]?.closed(this, hadError);
}

function onTimeout(this: SplicedSocket): void {
  const sp = this[SPLICE];
  if (sp === undefined) return;
  sp.up.destroy();
  sp.down.destroy();
}

/** The 'error' listener of every stream socket: the 'close' that follows does the accounting. */
export function destroySelf(this: Duplex): void {
  this.destroy();
}
