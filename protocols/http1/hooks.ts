// Module-level callbacks and the parser pool of the socket HTTP/1.1 engine. Socket listeners and llhttp
// callbacks are plain functions that find their connection through a symbol on the socket or the parser: no
// closure per connection or per request.
import type { Socket } from 'node:net';
import type { H1Conn } from './connection.ts';
import {
  HTTPParser, K_BODY, K_HEADERS, K_HEADERS_COMPLETE, K_MESSAGE_BEGIN, K_MESSAGE_COMPLETE, type LlhttpParser,
} from '../../src/http1/parser.ts';

const kConn = Symbol('switchyard.h1conn');
type Tagged = { [kConn]?: H1Conn };

/** Routes the socket's events to `c`. */
export function listen(socket: Socket, c: H1Conn): void {
  (socket as Socket & Tagged)[kConn] = c;
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('close', onClose);
  socket.on('drain', onDrain);
  socket.on('error', onError);
}

/**
 * Node's own 'end' listener of a socket does nothing once half-open is allowed; without it onEnd is the only
 * one, a function instead of an array (and its backing store) per connection.
 */
export function dropNoopEnd(socket: Socket): void {
  if (!socket.allowHalfOpen) return;
  for (const f of socket.rawListeners('end')) {
    if (f.name === 'onReadableStreamEnd') socket.removeListener('end', f as (...args: unknown[]) => void);
  }
}

/** Stops routing the socket's events (a tunnel takes the socket over). */
export function unlisten(socket: Socket): void {
  socket.off('data', onData);
  socket.off('end', onEnd);
  socket.off('close', onClose);
  socket.off('drain', onDrain);
  socket.off('error', onError);
}

/**
 * Parsers of idle keep-alive connections go back here (llhttp plus node's header buffers are about 2 KB of
 * native memory each, kept per connection by node:http); a connection takes one when its next bytes arrive.
 */
const pool: LlhttpParser[] = [];
const POOL_MAX = 1000;
const RESOURCE = {};

function newParser(): LlhttpParser {
  const p = new HTTPParser();
  p[K_MESSAGE_BEGIN] = onMessageBegin;
  p[K_HEADERS] = onHeaders;
  p[K_HEADERS_COMPLETE] = onHeadersComplete;
  p[K_BODY] = onBody;
  p[K_MESSAGE_COMPLETE] = onMessageComplete;
  return p;
}

/** A parser reset for a new request stream of `c`. */
export function takeParser(c: H1Conn, maxHeaderSize: number): LlhttpParser {
  const p = pool.pop() ?? newParser();
  p.initialize(HTTPParser.REQUEST, RESOURCE, maxHeaderSize, HTTPParser.kLenientNone);
  (p as Tagged)[kConn] = c;
  return p;
}

/** Returns an idle parser to the pool; false when the pool is full (the connection keeps it). */
export function parkParser(p: LlhttpParser): boolean {
  if (pool.length >= POOL_MAX) return false;
  (p as Tagged)[kConn] = undefined;
  pool.push(p);
  return true;
}

function closeParser(p: LlhttpParser): void {
  p.close();
}

/** Frees a parser of a closed connection; never inside execute(): the native parser must outlive its call. */
export function freeParser(p: LlhttpParser): void {
  (p as Tagged)[kConn] = undefined;
  setImmediate(closeParser, p);
}

function onData(this: Socket & Tagged, d: Buffer): void {
  this[kConn]!.onData(d);
}

function onEnd(this: Socket & Tagged): void {
  this[kConn]!.onEnd();
}

function onClose(this: Socket & Tagged): void {
  this[kConn]!.closedNow();
}

function onDrain(this: Socket & Tagged): void {
  this[kConn]!.drained();
}

function onError(this: Socket & Tagged): void {
  this.destroy();
}

function onMessageBegin(this: Tagged): void {
  this[kConn]?.messageBegin();
}

function onHeaders(this: Tagged, headers: string[], url: string): void {
  this[kConn]?.headers(headers, url);
}

function onHeadersComplete(
  this: Tagged, major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined,
  _status: unknown, _message: unknown, upgrade: boolean, keepAlive: boolean,
): number {
  const c = this[kConn];
  if (c === undefined) return -1;
  return c.headersComplete(major, minor, headers, method, url, upgrade, keepAlive);
}

function onBody(this: Tagged, chunk: Buffer): void {
  this[kConn]?.body(chunk);
}

function onMessageComplete(this: Tagged): void {
  this[kConn]?.messageComplete();
}
