// The forwarding phase of a TCP stream session: bytes both ways between the client and its upstream with
// backpressure (a write that returns false pauses the source until the other side drains), half-close (a
// FIN is passed on, the other direction keeps flowing), an idle timeout, and one callback once both
// sockets are closed.
//
// Memory is the point of this file: an idle MQTT client holds a session for hours, so everything a session
// keeps after its CONNECT peek counts tens of thousands of times. Readable.pipe() costs two sets of about a
// dozen closures plus once-wrappers per session; here the listeners are module-level functions shared by
// every session, which find their session through one symbol-keyed slot on the socket. No session has a timer
// of its own: each read stamps the session with a coarse clock, and one interval timer for all sessions closes
// those idle for their timeout (nginx's proxy_timeout: every forwarded byte is read from one of the sockets).
// Node's cached address objects of both sockets are dropped once the session has copied what it needs.
//
// CPU per MB is the other point: a default socket read allocates a fresh 64 KiB ArrayBuffer per read, and at
// hundreds of MB/s that external memory makes V8 run a full mark-compact several times a second (most of
// the proxy's CPU per MB in a profile). Upstream sockets therefore read through `onread` into buffers this
// file owns (UPSTREAM_ONREAD): light traffic lands in one buffer shared by every upstream socket and is
// copied out before it is written (a write the kernel only partly takes keeps pointing at its bytes, and the
// next read of any socket would overwrite them); a socket that reads bulk (a read of PRIVATE_AT bytes or
// more) gets a buffer of its own that is written without a copy and reused as long as each write leaves
// nothing queued, and goes back to the shared one once its reads are small again. Client sockets are
// accepted by net.Server, which has no onread, and keep the default reads.
import type net from 'node:net';
import type { Duplex } from 'node:stream';

const SPLICE = Symbol('swy.stream.splice');

interface SplicedSocket extends net.Socket {
  [SPLICE]?: Splice<unknown>;
  _peername?: unknown;
  _sockname?: unknown;
}

/** Live splices, swept for idleness by one unref'd interval timer that runs while there are any. */
const live = new Set<Splice<unknown>>();
let sweeper: NodeJS.Timeout | null = null;
let tickMs = 0;
const EPOCH = Date.now();
/** ms since EPOCH, advanced by the sweep: a read stamps its session without reading the clock. */
let clock = 0;

/**
 * Whole ms since EPOCH as a small integer (for 24 days): a fractional-typed number stored in `seen` would make
 * V8 give every Splice a separate heap number for that field.
 */
function now(): number {
  return Math.floor(Date.now() - EPOCH);
}

function sweep(): void {
  clock = now();
  for (const sp of live) {
    // A stamp may lag its read by up to a tick: a session counts as idle once idleMs + a tick have passed.
    if (clock - sp.seen >= sp.idleMs + tickMs) sp.expire();
  }
}

/** Live sessions per sweep tick: the interval follows the shortest tick still in use, not the shortest ever. */
const ticks = new Map<number, number>();

function tickOf(sp: Splice<unknown>): number {
  return Math.max(50, Math.min(1000, Math.floor(sp.idleMs / 4)));
}

function schedule(tick: number): void {
  if (sweeper !== null) clearInterval(sweeper);
  clock = now();
  tickMs = tick;
  sweeper = setInterval(sweep, tick);
  sweeper.unref();
}

/** Runs the sweep at least every quarter of the shortest idle timeout of the live sessions (50 ms to 1 s). */
function watch(sp: Splice<unknown>): void {
  // The start is stamped with the time itself: a sweep delayed by a busy event loop leaves `clock` behind by
  // the delay, and a session stamped with it would look idle that much too early (one clock read per session).
  clock = now();
  sp.seen = clock;
  live.add(sp);
  const tick = tickOf(sp);
  ticks.set(tick, (ticks.get(tick) ?? 0) + 1);
  if (sweeper === null || tick < tickMs) schedule(tick);
}

function unwatch(sp: Splice<unknown>): void {
  if (!live.delete(sp)) return;
  const tick = tickOf(sp);
  const left = (ticks.get(tick) ?? 1) - 1;
  if (left > 0) ticks.set(tick, left);
  else ticks.delete(tick);
  if (live.size === 0) {
    if (sweeper !== null) clearInterval(sweeper);
    sweeper = null;
  } else if (left === 0 && tick === tickMs) {
    // The last session with the shortest timeout left: sweep at the pace the remaining ones need.
    schedule(Math.min(...ticks.keys()));
  }
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
  idleMs = 0;
  /** The sweep clock at the last read of either socket. */
  seen = 0;

  constructor(down: net.Socket, up: net.Socket, owner: SpliceOwner<S>, state: S) {
    this.down = down;
    this.up = up;
    this.owner = owner;
    this.state = state;
  }

  /**
   * Starts forwarding. `early` are client bytes read before the upstream was connected (replayed first);
   * `clientEnded` says the client already half-closed while they were read. The client socket must be
   * paused (Prebuffer.release leaves it so). `upReadsToUser`: the upstream socket was connected paused with
   * UPSTREAM_ONREAD.
   */
  start(early: readonly Buffer[], clientEnded: boolean, idleMs: number, upReadsToUser = false): void {
    const { down, up } = this;
    (down as SplicedSocket)[SPLICE] = this;
    (up as SplicedSocket)[SPLICE] = this;
    if (up.listenerCount('error', destroySelf) === 0) up.on('error', destroySelf);
    if (down.listenerCount('error', destroySelf) === 0) down.on('error', destroySelf);
    up.on('close', onClose);
    down.on('close', onClose);
    // An onread socket emits no 'data'; it is paused until here (connectUpstream) and reads from now on.
    if (upReadsToUser) up.resume();
    else up.on('data', onData);
    up.on('end', onEnd);
    up.on('drain', onDrain);
    down.on('drain', onDrain);
    dropNoopEnd(down);
    dropNoopEnd(up);
    (down as SplicedSocket)._peername = undefined;
    (down as SplicedSocket)._sockname = undefined;
    (up as SplicedSocket)._peername = undefined;
    (up as SplicedSocket)._sockname = undefined;
    this.idleMs = idleMs;
    watch(this);

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
      unwatch(this);
      (this.down as SplicedSocket)[SPLICE] = undefined;
      (this.up as SplicedSocket)[SPLICE] = undefined;
      this.owner.spliceClosed(this, this.failed);
      return;
    }
    // One side is gone for good: flush what is queued for the other, then close it.
    const other = sock === this.down ? this.up : this.down;
    if (other.destroyed) return;
    if (hadError || other.writableFinished) other.destroy();
    else {
      other.end();
      other.once('finish', destroySelf);
    }
  }

  /** Idle past its timeout: both sockets close. */
  expire(): void {
    unwatch(this);
    this.up.destroy();
    this.down.destroy();
  }
}

/**
 * Node's own 'end' listener of a socket does nothing when half-open is allowed; without it our 'end' listener
 * is the only one, a function instead of an array (and its backing store) per socket.
 */
function dropNoopEnd(s: net.Socket): void {
  if (!s.allowHalfOpen) return;
  for (const f of s.rawListeners('end')) {
    if (f.name === 'onReadableStreamEnd') s.removeListener('end', f as (...args: unknown[]) => void);
  }
}

function peerOf(sp: Splice<unknown>, sock: net.Socket): net.Socket {
  return sock === sp.down ? sp.up : sp.down;
}

// hot path
function onData(this: SplicedSocket, chunk: Buffer): void {
  const sp = this[SPLICE];
  if (sp === undefined) return;
  sp.seen = clock;
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
  if (peer.destroyed) return;
  // The peer's FIN came earlier and all we wrote to it is with the kernel: both directions are done, and
  // close() sends the FIN after those bytes as shutdown() would, without its round of callbacks (the usual
  // end of a connection-per-request session).
  if (peer.readableEnded && peer.writableLength === 0) peer.destroy();
  else peer.end();
}

/** Size of every upstream read buffer (Node's own read size). */
const READ_SIZE = 64 * 1024;
/** A read at least this long moves its socket to a buffer of its own. */
const PRIVATE_AT = 16 * 1024;
/** A read shorter than this moves it back to the shared buffer (its own goes back to the pool). */
const SHARED_BELOW = 4 * 1024;
/** Bound on the private buffers kept for reuse. */
const POOL_MAX = 16;

const shared = Buffer.allocUnsafeSlow(READ_SIZE);
const pool: Buffer[] = [];
/** What the read that just ran chose as its socket's next buffer (handed over by nextReadBuffer). */
let next: Buffer = shared;

function privateBuffer(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(READ_SIZE);
}

// hot path: called by Node after every read of an onread socket (and once at connect), without `this`.
function nextReadBuffer(): Buffer {
  const b = next;
  next = shared;
  return b;
}

// hot path: `this` is the upstream socket; returning false stops its reads until the client drains.
function onUpstreamRead(this: SplicedSocket, n: number, buf: Buffer): boolean {
  const sp = this[SPLICE];
  const peer = sp === undefined ? null : sp.down;
  if (sp !== undefined) sp.seen = clock;
  if (buf === shared) {
    next = n >= PRIVATE_AT ? privateBuffer() : shared;
    if (peer === null || !peer.writable) return true;
    const copy = Buffer.allocUnsafe(n);
    shared.copy(copy, 0, 0, n);
    return peer.write(copy);
  }
  let flowing = true;
  if (peer !== null && peer.writable) flowing = peer.write(n === buf.length ? buf : buf.subarray(0, n));
  // Bytes still queued for the client may be these: the buffer then belongs to that write until it completes.
  const held = peer !== null && peer.writableLength > 0;
  if (n < SHARED_BELOW) {
    if (!held && pool.length < POOL_MAX) pool.push(buf);
    next = shared;
  } else next = held ? privateBuffer() : buf;
  return flowing;
}

/** `onread` for upstream sockets spliced by start(…, true); such a socket must be paused before it connects. */
export const UPSTREAM_ONREAD: net.OnReadOpts = {
  buffer: nextReadBuffer,
  // Node calls it as a method of the socket, which the typings do not say.
  callback: onUpstreamRead as unknown as net.OnReadOpts['callback'],
};

function onClose(this: SplicedSocket, hadError: boolean): void {
  this[SPLICE]?.closed(this, hadError);
}

/** The 'error' listener of every stream socket: the 'close' that follows does the accounting. */
export function destroySelf(this: Duplex): void {
  this.destroy();
}
