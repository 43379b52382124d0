// Module-level socket listeners, llhttp callbacks and the timeout sweep of the upstream HTTP/1.1 client. Each is
// a plain function that finds its connection through a symbol on the socket or the parser: nothing is bound per
// connection or per request. One interval timer for the whole process checks every live connection's deadline
// (connect, response head, gap between body reads, idle keep-alive) instead of a timer per request.
import type { Socket } from 'node:net';
import { HTTPParser, K_BODY, K_HEADERS, K_HEADERS_COMPLETE, K_MESSAGE_BEGIN, K_MESSAGE_COMPLETE, type LlhttpParser } from '../../http1/parser.ts';
import type { UpstreamConn } from './conn.ts';

const kConn = Symbol('switchyard.upstreamConn');
type Tagged = { [kConn]?: UpstreamConn };

/** Routes the socket's events to `c`; `tls` waits for the handshake instead of the TCP connect. */
export function listen(socket: Socket, c: UpstreamConn, tls: boolean): void {
  (socket as Socket & Tagged)[kConn] = c;
  // 'on', not 'once' (a wrapper closure per connection): connected() ignores anything after the first.
  socket.on(tls ? 'secureConnect' : 'connect', onConnect);
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('close', onClose);
  socket.on('drain', onDrain);
  socket.on('error', onError);
  if (tls) socket.on('session', onSession);
}

const RESOURCE = {};

/**
 * A response parser for `c`; `maxHeaderSize` bounds the status line plus header block. Its message-begin
 * callback is off: watchForJunk() turns it on only where a message start means trouble.
 */
export function newParser(c: UpstreamConn, maxHeaderSize: number): LlhttpParser {
  const p = new HTTPParser();
  p[K_HEADERS] = onHeaders;
  p[K_HEADERS_COMPLETE] = onHeadersComplete;
  p[K_BODY] = onBody;
  p[K_MESSAGE_COMPLETE] = onMessageComplete;
  p.initialize(HTTPParser.RESPONSE, RESOURCE, maxHeaderSize, HTTPParser.kLenientNone);
  (p as Tagged)[kConn] = c;
  return p;
}

/** Back to the start of a message (after a body read without llhttp, see conn.ts `bodyLeft`). */
export function resetParser(p: LlhttpParser, maxHeaderSize: number): void {
  p.initialize(HTTPParser.RESPONSE, RESOURCE, maxHeaderSize, HTTPParser.kLenientNone);
}

/**
 * After the end of a response llhttp parsed to its end (chunked, 1xx), any further message start is bytes
 * nobody asked for; the callback costs a call into JS per message, so it is on only from then until the
 * connection takes its next request.
 */
export function watchForJunk(p: LlhttpParser, on: boolean): void {
  p[K_MESSAGE_BEGIN] = on ? onMessageBegin : undefined;
}

function closeParser(p: LlhttpParser): void {
  p.close();
}

/** Frees the parser of a closed connection; later, because the native parser must outlive a running execute(). */
export function freeParser(p: LlhttpParser): void {
  (p as Tagged)[kConn] = undefined;
  setImmediate(closeParser, p);
}

function onConnect(this: Socket & Tagged): void {
  this[kConn]!.connected();
}

function onData(this: Socket & Tagged, d: Buffer): void {
  this[kConn]!.data(d);
}

function onEnd(this: Socket & Tagged): void {
  this[kConn]!.ended();
}

function onClose(this: Socket & Tagged): void {
  this[kConn]!.closed();
}

function onDrain(this: Socket & Tagged): void {
  this[kConn]!.drained();
}

function onSession(this: Socket & Tagged, ticket: Buffer): void {
  this[kConn]!.session(ticket);
}

function onError(this: Socket & Tagged, err: Error): void {
  this[kConn]!.failed(err);
}

function onMessageBegin(this: Tagged): void {
  this[kConn]?.messageBegin();
}

function onHeaders(this: Tagged, headers: string[]): void {
  this[kConn]?.headers(headers);
}

function onHeadersComplete(
  this: Tagged, _major: number, minor: number, headers: string[] | undefined, _method: unknown, _url: unknown,
  status: number, message: string, upgrade: boolean, keepAlive: boolean,
): number {
  const c = this[kConn];
  if (c === undefined) return -1;
  return c.headersComplete(minor, headers, status, message, upgrade, keepAlive);
}

function onBody(this: Tagged, chunk: Buffer): void {
  this[kConn]?.body(chunk);
}

function onMessageComplete(this: Tagged): void {
  this[kConn]?.messageComplete();
}

// The sweep ------------------------------------------------------------------------------------------------------

/**
 * Sweep period: a deadline fires between 0 and this many ms late, never early. APISIX timeouts are given in
 * seconds, so 100 ms is fine resolution, and ten wake-ups a second while connections exist cost nothing.
 */
export const SWEEP_MS = 100;

const live = new Set<UpstreamConn>();
let timer: NodeJS.Timeout | null = null;

/**
 * Epoch ms as of the last sweep (or the first tracked connection): per-request deadlines are `clock + timeout +
 * SWEEP_MS`, so they never fire early and a request reads no clock.
 */
export let clock = Date.now();

/** Puts `c` under the sweep until untrack(); its `deadline` (0: none) is read on every sweep. */
export function track(c: UpstreamConn): void {
  live.add(c);
  if (timer === null) {
    clock = Date.now();
    timer = setInterval(sweep, SWEEP_MS);
    timer.unref();
  }
}

export function untrack(c: UpstreamConn): void {
  live.delete(c);
  if (live.size === 0 && timer !== null) {
    clearInterval(timer);
    timer = null;
  }
}

function sweep(): void {
  const now = Date.now();
  clock = now;
  for (const c of live) {
    const d = c.deadline;
    if (d !== 0 && d <= now) c.expire();
  }
}
