// One connection of the upstream HTTP/1.1 client: a socket, its llhttp response parser, and the one request it
// runs at a time (no pipelining, as undici's default). The connection is the exchange's DispatchController
// (pause/resume/abort): a handler stops calling it once its response ended or failed, and every entry point
// checks that a handler is current, so nothing is allocated per request beyond the head string and the header
// record. Timeouts are deadlines read by the sweep in hooks.ts.
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import type { Dispatcher } from 'undici';
import { HEAD_OK, HEAD_UPGRADE, type LlhttpParser, type ParseError } from '../../http1/parser.ts';
import { clock, freeParser, listen, newParser, resetParser, SWEEP_MS, track, untrack, watchForJunk } from './hooks.ts';
import { holdWrites } from '../../http1/turn-writes.ts';
import { pumpBody } from './body-pump.ts';
import type { H1Pool } from './pool.ts';
import { reuseIdleMs } from './reuse.ts';
import {
  bodyTimeout, connectTimeout, expectsPayload, headerRecord, headersTimeout, headInfo, IDEMPOTENT, invalidArgument,
  lengthMismatch, otherSideClosed, parseFailure, requestHead, type H1ClientError,
} from './wire.ts';

const CONNECTING = 0;
const BUSY = 1;
const IDLE = 2;
const CLOSED = 3;

/** What `deadline` guards. */
const T_NONE = 0;
const T_CONNECT = 1;
const T_HEADERS = 2;
const T_BODY = 3;
const T_IDLE = 4;

/** on_headers_complete: no body follows (HEAD, 1xx). */
const HEAD_NO_BODY = 1;

const EMPTY_TRAILERS: Record<string, string | string[]> = Object.freeze({}) as Record<string, string | string[]>;
const CONTEXT = Object.freeze({});

type Body = Buffer | string | AsyncIterable<Buffer | string>;

export class UpstreamConn implements Dispatcher.DispatchController {
  readonly pool: H1Pool;
  readonly socket: Socket;
  /** TLS SNI the connection was opened with (null: cleartext, or no SNI); requests only reuse a matching one. */
  readonly servername: string | null;
  private parser: LlhttpParser | null;
  state = CONNECTING;
  timeout = T_CONNECT;
  /** Epoch ms at which `timeout` fires (0: none); read by the sweep. */
  deadline = 0;

  // The running request --------------------------------------------------------------------------------------
  private handler: Dispatcher.DispatchHandler | null = null;
  private opts: Dispatcher.DispatchOptions | null = null;
  private method = '';
  /** Counts request starts and ends, so an async body pump notices its request is gone. */
  private gen = 0;
  private headersTimeoutMs = 0;
  private bodyTimeoutMs = 0;
  /** The request (head and body) is on the wire. */
  private sent = false;
  /** A response byte arrived for the running request. */
  private gotBytes = false;
  /** Headers of the final response were handed to the handler. */
  private headed = false;
  /** llhttp reached the end of the final response (handled once execute()/finish() has returned). */
  private complete = false;
  /** The response lets the connection carry another request. */
  private reusable = false;
  /** This request asked the upstream to close (keepalive off, last of keepalive_pool.requests, or pool closing). */
  private closeSent = false;
  /**
   * A body on a method without payload semantics: undici (and this client) do not reuse such a connection.
   * Set by the writers of the body (here, body-pump.ts).
   */
  dirty = false;
  /** The request was already re-sent once after a reused connection died under it. */
  private retried = false;
  private pausedFlag = false;
  private abortReason: Error | null = null;
  /** Header fields llhttp flushed early (more than 32 lines), or the trailers after a chunked body. */
  private hdrs: string[] = [];
  private trailerLines: string[] | null = null;
  /** Bytes after the end of a response: the connection is not reused. */
  private junk = false;
  /** A failure decided inside a parser callback, reported when execute() returns. */
  private protoError: H1ClientError | null = null;
  /**
   * Body bytes still to come of a content-length response. Such a body is counted here and handed on as views
   * of the socket's buffers, which saves llhttp's copy and a call into JS per chunk: on_headers_complete
   * answers "upgrade" so execute() stops right after the head and returns the bytes it used (a pause would
   * cost an Error with a stack trace per response), and the parser is reset for the next response. Chunked
   * and read-until-close bodies go through llhttp.
   */
  private bodyLeft = 0;
  private executing = false;

  // The connection -------------------------------------------------------------------------------------------
  /** Requests started on this connection. */
  private requests = 0;
  /** The connection served a request before the running one (a stale keep-alive connection may die under it). */
  private reused = false;
  private error: Error | null = null;
  /** Idle time allowed before closing, ms (the pool's idle_timeout, lowered by a Keep-Alive: timeout hint). */
  private idleMs: number;
  private drainWaiter: (() => void) | null = null;

  constructor(pool: H1Pool, servername: string | null) {
    this.pool = pool;
    this.servername = servername;
    this.idleMs = pool.idleTimeoutMs;
    const o = pool.opts;
    if (o.tls !== null) {
      this.socket = tls.connect({
        host: o.host,
        port: o.port,
        servername: servername ?? undefined,
        rejectUnauthorized: o.tls.rejectUnauthorized,
        ...(o.tls.cert !== undefined && o.tls.key !== undefined ? { cert: o.tls.cert, key: o.tls.key } : {}),
        ALPNProtocols: ['http/1.1'],
        session: pool.session(servername),
      });
    } else {
      this.socket = net.connect({ host: o.host, port: o.port, noDelay: true });
    }
    this.parser = newParser(this, o.maxHeaderSize);
    listen(this.socket, this, o.tls !== null);
    if (o.connectTimeoutMs > 0) this.deadline = Date.now() + o.connectTimeoutMs;
    track(this);
  }

  // DispatchController ---------------------------------------------------------------------------------------

  get aborted(): boolean {
    return this.abortReason !== null;
  }

  get paused(): boolean {
    return this.pausedFlag;
  }

  get reason(): Error | null {
    return this.abortReason;
  }

  /**
   * Fails the running request with `reason` and drops the connection (its state is unknown mid-exchange); a
   * connection still connecting has sent nothing and is kept: once connected it serves the next request or idles,
   * so a client that cancels right after starting (an HTTP/2 rapid reset) costs no upstream connect per cancel.
   */
  abort(reason: Error): void {
    const h = this.handler;
    if (h === null) return;
    this.abortReason = reason;
    this.forget();
    h.onResponseError?.(this, reason);
    if (this.state !== CONNECTING) this.destroy();
    else if (this.handler === null) this.pool.spare(this);
  }

  pause(): void {
    if (this.handler === null || this.pausedFlag) return;
    this.pausedFlag = true;
    this.socket.pause();
    // A consumer that stops reading is not the upstream being slow (undici: no body timeout while paused).
    if (this.timeout === T_BODY) this.deadline = 0;
  }

  resume(): void {
    if (!this.pausedFlag) return;
    this.pausedFlag = false;
    this.socket.resume();
    if (this.timeout === T_BODY && this.bodyTimeoutMs > 0) this.deadline = clock + this.bodyTimeoutMs + SWEEP_MS;
  }

  // Requests -------------------------------------------------------------------------------------------------

  /** Runs `opts` on this connection (idle, or still connecting: written once connected). */
  assign(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, retried: boolean): void {
    // hot path
    this.handler = handler;
    this.opts = opts;
    this.method = opts.method;
    this.gen++;
    this.retried = retried;
    this.reused = this.requests > 0;
    this.requests++;
    this.headersTimeoutMs = opts.headersTimeout ?? 0;
    this.bodyTimeoutMs = opts.bodyTimeout ?? 0;
    this.sent = false;
    this.gotBytes = false;
    this.headed = false;
    this.complete = false;
    this.reusable = false;
    this.dirty = false;
    this.abortReason = null;
    this.junk = false;
    this.bodyLeft = 0;
    if (this.state === IDLE) {
      this.state = BUSY;
      this.timeout = T_NONE;
      this.deadline = 0;
    }
    handler.onRequestStart?.(this, CONTEXT);
    // The handler may abort at once (its client left while the request was queued).
    if (this.handler === handler && this.state === BUSY) this.write();
  }

  /** TCP (or TLS) is up: the assigned request goes out. */
  connected(): void {
    if (this.state !== CONNECTING) return;
    this.socket.setKeepAlive(true, 60_000);
    this.state = BUSY;
    this.timeout = T_NONE;
    this.deadline = 0;
    if (this.handler !== null) this.write();
    else {
      this.pool.unspare(this);
      this.pool.free(this);
    }
  }

  private write(): void {
    // hot path
    const o = this.opts!;
    const pool = this.pool;
    const method = this.method;
    const close = pool.lastRequest(this.requests);
    this.closeSent = close;
    const head = requestHead(method, o.path, o.headers as Record<string, string | string[]>, pool.hostHeader, close);
    if (head === '') {
      this.kill(headInfo.error!);
      return;
    }
    const declared = headInfo.contentLength;
    const body = o.body as Body | null | undefined;
    const socket = this.socket;
    if (body === null || body === undefined || (typeof body !== 'string' && Buffer.isBuffer(body) && body.length === 0)) {
      // The head leaves with the other writes of this event-loop turn (src/http1/turn-writes.ts).
      holdWrites(socket);
      socket.write(expectsPayload(method) ? `${head}content-length: 0\r\n\r\n` : `${head}\r\n`, 'latin1');
      this.requestSent();
    } else if (typeof body === 'string' || Buffer.isBuffer(body)) {
      const buf = typeof body === 'string' ? Buffer.from(body) : body;
      if (declared >= 0 && declared !== buf.length) {
        this.kill(lengthMismatch());
        return;
      }
      if (!expectsPayload(method)) this.dirty = true;
      // One write of head and body (writev), as undici does for Buffer bodies, with this turn's other writes.
      holdWrites(socket);
      socket.write(`${head}content-length: ${buf.length}\r\n\r\n`, 'latin1');
      socket.write(buf);
      this.requestSent();
    } else if (typeof (body as AsyncIterable<Buffer>)[Symbol.asyncIterator] === 'function') {
      void pumpBody(this, body, head, method, declared, this.gen);
    } else {
      this.kill(invalidArgument('request body'));
    }
  }

  /** Whether request `gen` still runs on this open connection (body-pump.ts checks after each await). */
  runs(gen: number): boolean {
    return this.gen === gen && this.state === BUSY;
  }

  /** Resolves at the socket's next 'drain', or when it closes. */
  drain(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.drainWaiter = resolve;
    });
  }

  /** A streamed body failed: request `gen` fails with `err` (if it is still the running one). */
  failRequest(gen: number, err: Error): void {
    if (this.gen === gen) this.kill(err);
  }

  drained(): void {
    const w = this.drainWaiter;
    if (w === null) return;
    this.drainWaiter = null;
    w();
  }

  /** The read timeout runs from the end of the request (nginx arms proxy_read_timeout once the request is sent). */
  requestSent(): void {
    this.sent = true;
    if (this.handler === null || this.headed) return;
    this.timeout = T_HEADERS;
    this.deadline = this.headersTimeoutMs > 0 ? clock + this.headersTimeoutMs + SWEEP_MS : 0;
  }

  // Socket events --------------------------------------------------------------------------------------------

  data(chunk: Buffer): void {
    // hot path
    if (this.state !== BUSY || this.handler === null) {
      // Bytes nobody asked for (an idle connection, or past the end of a response): the stream is out of step.
      this.junk = true;
      this.destroy();
      return;
    }
    this.gotBytes = true;
    // A handler that throws fails its own request, not the process (the socket listener would rethrow).
    try {
      if (this.bodyLeft > 0) {
        this.countBody(chunk);
        if (this.complete) this.finish();
      } else {
        this.executing = true;
        const r = this.parser!.execute(chunk);
        this.executing = false;
        this.afterParse(r, chunk);
      }
    } catch (err) {
      this.executing = false;
      this.kill(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (this.timeout === T_BODY && this.handler !== null && !this.pausedFlag && this.bodyTimeoutMs > 0) {
      this.deadline = clock + this.bodyTimeoutMs + SWEEP_MS;
    }
  }

  /** Bytes of a content-length body (see `bodyLeft`); anything past its end is junk. */
  private countBody(d: Buffer): void {
    // hot path
    const h = this.handler!;
    const left = this.bodyLeft;
    const n = d.length;
    if (n <= left) {
      this.bodyLeft = left - n;
      h.onResponseData?.(this, d);
    } else {
      this.bodyLeft = 0;
      this.junk = true;
      h.onResponseData?.(this, d.subarray(0, left));
    }
    if (this.bodyLeft === 0 && this.handler === h) this.complete = true;
  }

  /** FIN from the upstream: ends a read-until-close body, fails an unfinished response. */
  ended(): void {
    if (this.state === BUSY && this.handler !== null && this.parser !== null && this.bodyLeft === 0) {
      this.executing = true;
      const r = this.parser.finish();
      this.executing = false;
      if (this.complete) {
        this.reusable = false;
        this.afterParse(r ?? 0, null);
        return;
      }
    }
    this.destroy();
  }

  failed(err: Error): void {
    if (this.error === null) this.error = err;
  }

  closed(): void {
    this.state = CLOSED;
    this.deadline = 0;
    untrack(this);
    if (this.parser !== null && !this.executing) {
      freeParser(this.parser);
      this.parser = null;
    }
    this.drained();
    this.pool.gone(this);
    if (this.handler !== null) this.lost(this.error ?? otherSideClosed());
    this.pool.pump();
  }

  /** The sweep found `deadline` passed. */
  expire(): void {
    switch (this.timeout) {
      case T_CONNECT:
        this.kill(connectTimeout(this.pool.opts.connectTimeoutMs));
        break;
      case T_HEADERS:
        this.kill(headersTimeout());
        break;
      case T_BODY:
        this.kill(bodyTimeout());
        break;
      default:
        this.destroy();
    }
  }

  // Parser callbacks -----------------------------------------------------------------------------------------

  /** Only called while watchForJunk() is on: a message after the end of the response. */
  messageBegin(): void {
    this.junk = true;
  }

  headers(lines: string[]): void {
    // After the head these are the trailers of a chunked body.
    if (this.headed) {
      if (this.trailerLines === null) this.trailerLines = [];
      for (let i = 0; i < lines.length; i++) this.trailerLines.push(lines[i]!);
    } else {
      for (let i = 0; i < lines.length; i++) this.hdrs.push(lines[i]!);
    }
  }

  headersComplete(minor: number, raw: string[] | undefined, status: number, message: string, upgrade: boolean, keepAlive: boolean): number {
    // hot path
    const h = this.handler;
    if (h === null || this.complete) return -1;
    if (raw === undefined) {
      raw = this.hdrs;
      this.hdrs = [];
    }
    // Nothing here asked to switch protocols (upgrades go through src/upstream/tunnel.ts).
    if (upgrade || status === 101) {
      this.protoError = parseFailure('UND_ERR_SOCKET', 'bad upgrade');
      return -1;
    }
    // 1xx (100 Continue, 103 Early Hints): skipped, the final response follows on the same message stream.
    if (status < 200) {
      this.hdrs.length = 0;
      return HEAD_NO_BODY;
    }
    const headers = headerRecord(raw);
    this.headed = true;
    const head = this.method === 'HEAD';
    const idle = reuseIdleMs(headers, status, minor, keepAlive, head, this.idleMs, this.pool.idleTimeoutMs);
    if (idle >= 0) this.idleMs = idle;
    this.reusable = idle >= 0 && !this.closeSent && !this.dirty;
    this.timeout = T_BODY;
    this.deadline = this.bodyTimeoutMs > 0 ? clock + this.bodyTimeoutMs + SWEEP_MS : 0;
    h.onResponseStart?.(this, status, headers, message);
    if (this.handler !== h) return -1;
    if (head) return HEAD_NO_BODY;
    // llhttp has checked the framing headers (one valid content-length, not with transfer-encoding).
    const cl = headers['content-length'];
    if (typeof cl === 'string' && status !== 204 && status !== 304 && headers['transfer-encoding'] === undefined && cl !== '0') {
      this.bodyLeft = Number(cl);
      return HEAD_UPGRADE;
    }
    return HEAD_OK;
  }

  body(chunk: Buffer): void {
    // hot path
    const h = this.handler;
    if (h === null || !this.headed || this.complete) return;
    h.onResponseData?.(this, chunk);
  }

  messageComplete(): void {
    // llhttp ends the message at a head answered "upgrade": the content-length body is still to come.
    if (this.bodyLeft > 0) return;
    // From here on a message start is junk (not after a skipped 1xx: the final response is still due).
    if (this.parser !== null) watchForJunk(this.parser, this.headed);
    // The end of a skipped 1xx message: keep waiting for the final response.
    if (this.handler === null || !this.headed) return;
    this.complete = true;
  }

  private afterParse(r: number | ParseError | undefined, chunk: Buffer | null): void {
    // hot path
    if (typeof r === 'number' && this.bodyLeft > 0) {
      // Stopped after the head of a content-length response (`r` bytes of `chunk`): the body is counted here.
      resetParser(this.parser!, this.pool.opts.maxHeaderSize);
      if (chunk !== null && r < chunk.length) this.countBody(r === 0 ? chunk : chunk.subarray(r));
    }
    if (this.complete) {
      if (typeof r === 'object' || this.junk) this.reusable = false;
      this.finish();
      return;
    }
    if (typeof r === 'object') {
      const err = this.protoError ?? parseFailure(r.code, r.reason);
      this.protoError = null;
      this.kill(err);
    }
  }

  /** The response ended: the handler hears it, then the connection goes back to the pool or closes. */
  private finish(): void {
    // hot path
    const h = this.handler!;
    const reuse = this.reusable && this.sent && !this.junk && this.state === BUSY;
    const lines = this.trailerLines;
    this.trailerLines = null;
    if (this.parser !== null) watchForJunk(this.parser, false);
    this.forget();
    this.timeout = T_NONE;
    this.deadline = 0;
    h.onResponseEnd?.(this, lines === null ? EMPTY_TRAILERS : headerRecord(lines));
    if (this.state !== BUSY) return;
    if (this.pausedFlag) {
      this.pausedFlag = false;
      this.socket.resume();
    }
    if (reuse) this.pool.free(this);
    else this.destroy();
  }

  /** Forgets the running request (its handler was or is about to be told how it ended). */
  private forget(): void {
    this.handler = null;
    this.opts = null;
    this.complete = false;
    this.gen++;
  }

  /** The pool is destroyed: the running request (if any) fails with `err`. */
  terminate(err: Error): void {
    this.kill(err);
  }

  /** Fails the running request with `err` and drops the connection. */
  private kill(err: Error): void {
    const h = this.handler;
    this.forget();
    if (h !== null) h.onResponseError?.(this, err);
    this.destroy();
  }

  /**
   * The connection died under the running request. A reused keep-alive connection that died before any response
   * byte most likely timed out on the upstream's side while idle: like nginx (an extra try for a cached
   * connection), the request is sent once more on a fresh connection when that is safe (idempotent method,
   * body not streamed).
   */
  private lost(err: Error): void {
    const h = this.handler!;
    const o = this.opts!;
    this.forget();
    const body = o.body;
    const replayable = body === null || body === undefined || typeof body === 'string' || Buffer.isBuffer(body);
    if (this.reused && !this.gotBytes && !this.retried && replayable && IDEMPOTENT.has(this.method) && this.pool.redispatch(o, h)) return;
    h.onResponseError?.(this, err);
  }

  /** TLS session tickets of this connection resume the pool's next handshakes to the same name. */
  session(ticket: Buffer): void {
    this.pool.keepSession(this.servername, ticket);
  }

  /** Keep-alive: waits in the pool for the next request. */
  parkIdle(): void {
    this.state = IDLE;
    this.timeout = T_IDLE;
    this.deadline = Date.now() + this.idleMs;
  }

  destroy(): void {
    if (this.state === CLOSED) return;
    const wasIdle = this.state === IDLE;
    // Not idle any more: nobody may take it between now and its 'close' event.
    this.state = CLOSED;
    if (wasIdle) this.pool.unidle(this);
    this.socket.destroy();
  }
}
