// One client connection of the socket-level HTTP/1.1 engine. All state lives on this object; socket and parser
// callbacks are module-level functions that find it through a symbol (hooks.ts: no per-request closures), and
// there are no per-request timers (the engine's sweep checks `deadline`). One request is served at a time: a
// pipelined head that completes while another exchange runs pauses llhttp right after that head (HPE_PAUSED
// from on_headers_complete) and the unread bytes wait in `stash` with the socket paused.
import type { Socket } from 'node:net';
import { ERRORS } from '../../src/errors.ts';
import type { HeaderMap } from '../../src/plugin/context.ts';
import { refusalCode } from '../../src/pipeline/raw-answer.ts';
import { H1Body, H1Exchange, type ConnAddr, type ExchangeHost } from './exchange.ts';
import { dropNoopEnd, freeParser, listen, parkParser, takeParser, unlisten } from './hooks.ts';
import { requestAuthority } from '../../src/pipeline/authority.ts';
import { HEAD_OK, HEAD_UPGRADE, METHOD_NAMES, PAUSE, type LlhttpParser, type ParseError } from '../../src/http1/parser.ts';
import { releaseWrites } from '../../src/http1/turn-writes.ts';
import type { Http1Engine } from './engine.ts';
import { addHeader, rawAnswer } from './wire.ts';

/** What `deadline` guards. */
export const T_NONE = 0;
export const T_HEADER = 1;
export const T_BODY = 2;
export const T_IDLE = 3;
export const T_SEND = 4;
export const T_CLOSING = 5;

const EMPTY = Buffer.alloc(0);
const CONTINUE_RE = /^100-continue$/i;
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** First bytes that start the HTTP/2 preface (at least 3 of them, as the node:http path sniffs). */
function h2Preface(d: Buffer): boolean {
  const n = Math.min(d.length, H2_PREFACE.length);
  return n >= 3 && d.compare(H2_PREFACE, 0, n, 0, n) === 0;
}

/** What node caches on a socket once its addresses were read (net.Socket's _peername/_sockname objects). */
interface AddrCache {
  _peername?: unknown;
  _sockname?: unknown;
}

function normalizeAddr(a: string | undefined): string {
  if (a === undefined) return '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

function aborted(): Error {
  const err = new Error('aborted') as NodeJS.ErrnoException;
  err.code = 'ECONNRESET';
  return err;
}

export class H1Conn implements ExchangeHost, ConnAddr {
  readonly socket: Socket;
  readonly engine: Http1Engine;
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly serverAddr: string;
  readonly serverPort: number;
  parser: LlhttpParser | null;
  /** The exchange the pipeline works on (its response not yet ended). */
  cur: H1Exchange | null = null;
  /** The exchange whose request bytes the parser is reading (head done, message not complete). */
  rx: H1Exchange | null = null;
  /** A parsed head to dispatch once the parser has returned. */
  ready: H1Exchange | null = null;
  /** A pipelined head the parser paused after, waiting for `cur` to end. */
  waiting: H1Exchange | null = null;
  /** Bytes received but not yet parsed (after a pause, or while the loop runs). */
  stash: Buffer | null = null;
  /** Header lines and URL of a head llhttp delivered in pieces (slow path). */
  private hdrs: string[] | null = null;
  private url = '';
  /** Status to answer once the running exchange ended (a later pipelined request was malformed). */
  private deferred = 0;
  /** A head refused in on_headers_complete: 431 (too many fields), 400, or -1 (CONNECT: closed unanswered). */
  failStatus = 0;
  private driving = false;
  /** No byte was parsed since the last complete request: the parser holds no state worth keeping. */
  private atBoundary = true;
  private pausedBody = false;
  private pausedQueue = false;
  /** Request messages read to their end on this connection (progress check of execute()). */
  private messages = 0;
  closed = false;
  detached = false;
  /** The first bytes decide between HTTP/1.1 and h2c prior knowledge (engine.h2c). */
  private sniff: boolean;
  timeout = T_HEADER;
  deadline: number;

  constructor(engine: Http1Engine, socket: Socket, sniffH2: boolean) {
    this.engine = engine;
    this.socket = socket;
    this.remoteAddr = engine.remoteAddr(normalizeAddr(socket.remoteAddress));
    this.remotePort = socket.remotePort ?? 0;
    this.serverAddr = engine.localAddr(normalizeAddr(socket.localAddress));
    this.serverPort = socket.localPort ?? 0;
    this.sniff = sniffH2;
    this.deadline = Date.now() + engine.headerTimeoutMs;
    // The parser is taken when the first bytes arrive (execute).
    this.parser = null;
    // Half-open allowed: onEnd decides (finish the parser, then answer or close) instead of node ending the socket.
    socket.allowHalfOpen = true;
    listen(socket, this);
    if (!sniffH2) dropNoopEnd(socket);
  }

  get closing(): boolean {
    return this.engine.closing;
  }

  get altSvc(): string | undefined {
    return this.engine.altSvc;
  }

  get keepAliveLines(): string {
    return this.engine.keepAliveLines;
  }

  // Parser callbacks (called with the parser as `this`, see below) -------------------------------------------------

  messageBegin(): void {
    this.atBoundary = false;
  }

  headers(h: string[], url: string): void {
    // Trailers of a chunked request body: not forwarded (the pipeline has no request trailers).
    if (this.rx !== null) return;
    const hdrs = (this.hdrs ??= []);
    for (let i = 0; i < h.length; i++) hdrs.push(h[i]!);
    this.url += url;
  }

  headersComplete(major: number, minor: number, raw: string[] | undefined, method: number, url: string | undefined, upgrade: boolean, keepAlive: boolean): number {
    // hot path
    if (raw === undefined) {
      raw = this.hdrs ?? [];
      this.hdrs = null;
    }
    if (url === undefined) {
      url = this.url;
      this.url = '';
    }
    const engine = this.engine;
    if (raw.length > engine.maxHeaderPairs) {
      this.failStatus = 431;
      return -1;
    }
    const name = METHOD_NAMES[method];
    if (name === undefined) {
      this.failStatus = 400;
      return -1;
    }
    // CONNECT: node:http without a 'connect' listener closes the connection unanswered; so does this engine.
    if (name === 'CONNECT') {
      this.failStatus = -1;
      return -1;
    }
    const headers: HeaderMap = {};
    let hosts = 0;
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i]!.toLowerCase();
      if (k === 'host') hosts++;
      addHeader(headers, k, raw[i + 1]!);
    }
    const version = major === 1 && minor === 1 ? '1.1' : `${major}.${minor}`;
    const authority = hosts > 1 || (hosts === 0 && major === 1 && minor >= 1) ? null : ((headers.host as string | undefined) ?? '');
    const ex = new H1Exchange(this, name, url, authority, headers, version, keepAlive, this);
    // TLS facts for the authority the pipeline will route (an absolute-form target's, else Host).
    ex.tls = engine.tlsInfo(this.socket, requestAuthority(url, authority));
    const expect = headers.expect;
    if (expect !== undefined && version === '1.1') {
      if (CONTINUE_RE.test(expect as string)) ex.expectContinue = true;
      else ex.expectFailed = true;
    }
    if (upgrade) {
      ex.upgrade = true;
      ex.upgrade = engine.pipeline.upgradeWanted(ex);
    }
    const cl = headers['content-length'];
    if (!ex.upgrade && ((cl !== undefined && cl !== '0') || headers['transfer-encoding'] !== undefined)) ex.body = new H1Body(ex);
    this.rx = ex;
    if (this.cur !== null) {
      this.waiting = ex;
      return PAUSE;
    }
    this.start(ex);
    return ex.upgrade ? HEAD_UPGRADE : HEAD_OK;
  }

  body(chunk: Buffer): void {
    // hot path
    const rx = this.rx;
    const b = rx?.body;
    if (b === null || b === undefined || rx!.ended || b.destroyed) return;
    if (!b.push(chunk)) {
      this.pausedBody = true;
      this.socket.pause();
      if (this.timeout === T_BODY) this.timeout = T_NONE;
    } else if (this.timeout === T_BODY) this.deadline = this.engine.clock + this.engine.bodyTimeoutMs; // the sweep's clock: no clock read per chunk
  }

  messageComplete(): void {
    this.atBoundary = true;
    this.messages++;
    const rx = this.rx;
    if (rx === null) return;
    this.rx = null;
    rx.complete = true;
    if (rx.body !== null && !rx.body.destroyed) rx.body.push(null);
    if (this.timeout === T_BODY) this.timeout = T_NONE;
    // The answer went out before the body was read to its end: the connection is free now.
    if (rx.ended && this.cur === rx) this.cur = null;
  }

  // The loop ---------------------------------------------------------------------------------------------------

  /** Makes `ex` the running exchange (dispatched once the parser has returned). */
  private start(ex: H1Exchange): void {
    this.cur = ex;
    this.ready = ex;
    this.timeout = ex.body !== null ? T_BODY : T_NONE;
    this.deadline = Date.now() + this.engine.bodyTimeoutMs;
  }

  /** Parses, dispatches and moves to the next pipelined request until there is nothing to do. */
  drive(): void {
    if (this.driving) return;
    this.driving = true;
    for (;;) {
      if (this.closed && !this.detached) break;
      const r = this.ready;
      if (r !== null) {
        this.ready = null;
        this.dispatch(r);
        continue;
      }
      if (this.detached) break;
      if (this.waiting !== null) {
        if (this.cur !== null) break;
        const w = this.waiting;
        this.waiting = null;
        this.parser!.resume();
        this.pausedQueue = false;
        this.start(w);
        continue;
      }
      if (this.cur === null && this.deferred !== 0) {
        this.fail(this.deferred);
        break;
      }
      const s = this.stash;
      if (s !== null) {
        this.stash = null;
        this.execute(s);
        continue;
      }
      if (this.cur === null) this.idle();
      break;
    }
    this.driving = false;
    if (!this.pausedQueue && !this.pausedBody && this.socket.isPaused() && !this.closed && !this.detached && this.cur?.upgrade !== true) {
      this.socket.resume();
    }
  }

  private execute(d: Buffer): void {
    if (this.parser === null) this.parser = takeParser(this, this.engine.maxHeaderSize);
    const p = this.parser;
    let off = 0;
    let messages = this.messages;
    for (;;) {
      const r = p.execute(off === 0 ? d : d.subarray(off));
      if (typeof r !== 'number') {
        if (r.code === 'HPE_PAUSED') {
          this.pauseAt(d, off + r.bytesParsed);
          return;
        }
        this.parseError(r);
        return;
      }
      off += r;
      // Once llhttp has flagged a head as an upgrade (Upgrade + Connection: upgrade, or CONNECT), the binding
      // reports a refused head or a pause as a plain byte count (node_http_parser.cc drops the error code of
      // an upgrade): the head's own state tells instead.
      if (this.failStatus !== 0) {
        this.failParse(this.failStatus, null);
        return;
      }
      if (this.waiting !== null && !this.pausedQueue) {
        this.pauseAt(d, off);
        return;
      }
      const cur = this.cur;
      if (cur !== null && cur.upgrade && cur.complete) {
        // The rest of the bytes belong to the upgraded protocol.
        cur.rest = off < d.length ? d.subarray(off) : EMPTY;
        return;
      }
      if (off >= d.length) return;
      // llhttp stops after a request that asked for an upgrade the gateway did not take: go on with the rest.
      // That stop may consume no byte (a paused upgrade head resumed: only its message end remains); a call
      // that neither consumed a byte nor ended a message would loop forever.
      if (r === 0 && this.messages === messages) {
        this.socket.destroy();
        return;
      }
      messages = this.messages;
    }
  }

  /** llhttp paused right after a pipelined head: the bytes from `at` wait until the running exchange ends. */
  private pauseAt(d: Buffer, at: number): void {
    this.stash = d.subarray(at);
    this.pausedQueue = true;
    this.socket.pause();
  }

  private dispatch(ex: H1Exchange): void {
    if (ex.expectFailed) {
      ex.head(417, { 'content-length': '0' });
      ex.end(null);
      return;
    }
    if (ex.upgrade) {
      // The tunnel reads the socket from here on.
      this.socket.pause();
    }
    this.engine.pipeline.handle(ex, ex);
  }

  private idle(): void {
    if (this.timeout !== T_IDLE && this.timeout !== T_HEADER) {
      this.timeout = T_IDLE;
      this.deadline = Date.now() + this.engine.keepaliveTimeoutMs;
    }
    if (this.engine.closing) {
      this.socket.end();
      return;
    }
    this.releaseParser();
    // Idle keep-alive connections live for minutes, by the ten thousand: node's cached address objects (two
    // objects and their strings per socket, read by us and by observers of net.server.socket after accept) are
    // dropped, the fields above have what requests need; node reads them again if anyone asks.
    const s = this.socket as Socket & AddrCache;
    s._peername = undefined;
    s._sockname = undefined;
  }

  // ExchangeHost ------------------------------------------------------------------------------------------------

  bodyWanted(ex: H1Exchange): void {
    ex.sendContinue();
    if (this.pausedBody && this.rx === ex) {
      this.pausedBody = false;
      this.timeout = T_BODY;
      this.deadline = Date.now() + this.engine.bodyTimeoutMs;
      if (!this.pausedQueue && !this.driving) this.socket.resume();
    }
  }

  writeBlocked(): void {
    this.timeout = T_SEND;
    this.deadline = Date.now() + this.engine.bodyTimeoutMs;
  }

  exchangeEnded(ex: H1Exchange): void {
    if (this.cur !== ex) return;
    if (!ex.keepOpen || this.closed) {
      this.cur = null;
      this.waiting = null;
      this.stash = null;
      if (!this.closed) this.closeSoon();
      return;
    }
    if (this.timeout === T_SEND) this.timeout = T_NONE;
    if (!ex.complete) {
      // The answer came before the whole body: the rest is read and dropped (node:http does the same).
      const b = ex.body;
      if (b !== null && !b.destroyed) b.destroy();
      if (this.pausedBody) {
        this.pausedBody = false;
        this.timeout = T_BODY;
        this.deadline = Date.now() + this.engine.bodyTimeoutMs;
        if (!this.pausedQueue && !this.driving) this.socket.resume();
      }
      return;
    }
    this.cur = null;
    this.drive();
  }

  detach(): void {
    // The tunnel writes from now on, at once.
    releaseWrites(this.socket);
    this.detached = true;
    this.engine.forget(this);
    unlisten(this.socket);
    this.socket.pause();
    this.freeParser();
  }

  // Failures and the end --------------------------------------------------------------------------------------

  private parseError(err: ParseError): void {
    // A head refused in on_headers_complete has its own status; other errors map as on the node:http engine.
    const refused = err.code === 'HPE_CB_HEADERS_COMPLETE' && this.failStatus !== 0;
    this.failParse(refused ? this.failStatus : ERRORS[refusalCode(err.code)].status, err);
  }

  /** A malformed or refused request: answered `status` (none when -1) once the running exchange ended. */
  private failParse(status: number, err: ParseError | null): void {
    const rx = this.rx;
    if (rx !== null && rx.body !== null && !rx.body.destroyed) rx.body.destroy(err ?? aborted());
    const cur = this.cur;
    if (cur !== null && cur !== rx && !cur.ended) {
      // A later pipelined request is malformed: the running one is answered first.
      this.deferred = status;
      this.pausedQueue = true;
      this.socket.pause();
      return;
    }
    this.fail(status);
  }

  /** Answers `status` (unless a response is under way) and closes. */
  fail(status: number): void {
    const cur = this.cur;
    const writable = this.socket.writable && (cur === null || !cur.headSent);
    if (cur !== null && !cur.ended) {
      cur.ended = true;
      cur.events?.onClose();
    }
    this.cur = null;
    if (writable && status > 0) this.socket.write(rawAnswer(status), 'latin1');
    this.closeSoon();
  }

  /** Ends the connection after what was written; a peer that does not close is cut off by the sweep. */
  closeSoon(): void {
    this.timeout = T_CLOSING;
    this.deadline = Date.now() + 1000;
    this.socket.end();
  }

  /** The sweep found `deadline` passed. */
  expire(): void {
    // A client that never sent a byte is closed unanswered, as nginx and node:http do.
    if (this.timeout === T_HEADER && this.messages === 0 && this.parser === null && this.stash === null) {
      this.socket.destroy();
      return;
    }
    if (this.timeout === T_HEADER && this.cur === null && this.socket.writable) {
      this.socket.write(rawAnswer(408), 'latin1');
      this.closeSoon();
      this.timeout = T_CLOSING;
      return;
    }
    this.socket.destroy();
  }

  closedNow(): void {
    if (this.closed) return;
    this.closed = true;
    this.engine.forget(this);
    const rx = this.rx;
    if (rx !== null && rx.body !== null && !rx.body.destroyed) rx.body.destroy(aborted());
    const w = this.waiting;
    if (w !== null && w.body !== null && !w.body.destroyed) w.body.destroy(aborted());
    const cur = this.cur;
    this.cur = null;
    this.waiting = null;
    this.stash = null;
    if (cur !== null && !cur.ended) {
      cur.ended = true;
      cur.events?.onClose();
    }
    this.freeParser();
  }

  /** Between two requests, with nothing buffered: the parser goes back to the pool. */
  private releaseParser(): void {
    const p = this.parser;
    if (p === null || !this.atBoundary || this.hdrs !== null || !parkParser(p)) return;
    this.parser = null;
  }

  private freeParser(): void {
    const p = this.parser;
    if (p === null) return;
    this.parser = null;
    freeParser(p);
  }

  drained(): void {
    if (this.timeout === T_SEND) this.timeout = T_NONE;
    this.cur?.events?.onDrain();
  }

  onData(d: Buffer): void {
    // hot path
    if (this.sniff) {
      this.sniff = false;
      if (h2Preface(d)) {
        this.detach();
        // As node:http2 gets its sockets from a listener.
        this.socket.allowHalfOpen = false;
        this.socket.unshift(d);
        this.engine.h2c!(this.socket);
        return;
      }
      dropNoopEnd(this.socket);
    }
    if (this.timeout === T_IDLE) {
      this.timeout = T_HEADER;
      this.deadline = Date.now() + this.engine.headerTimeoutMs;
    }
    const s = this.stash;
    if (s !== null) {
      this.stash = s.length === 0 ? d : Buffer.concat([s, d]);
      if (this.pausedQueue) return;
    } else this.stash = d;
    this.drive();
  }

  onEnd(): void {
    const p = this.parser;
    if (p !== null && this.stash === null) {
      const r = p.finish();
      if (r !== undefined && typeof r !== 'number') {
        this.parseError(r);
        return;
      }
    }
    // A client that ends its side while an exchange runs has left, as nginx (499, "client prematurely closed
    // connection") and node:http see it: the upstream work is cancelled.
    if (this.cur !== null || this.stash !== null) this.socket.destroy();
    else this.socket.end();
  }
}
