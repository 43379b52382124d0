// One HTTP/1.1 request on a socket-level connection: it is at once the pipeline's PipelineRequest and its
// Downstream (one object per request, no closures). Response framing is decided here: content-length as given,
// chunked (with trailers) when the length is unknown on HTTP/1.1, close-delimited on HTTP/1.0; HEAD, 1xx, 204
// and 304 answers carry no body. Writes go to the socket, held until the end of the event-loop turn
// (src/http1/turn-writes.ts); its write() result is the backpressure.
import type { Socket } from 'node:net';
import { Readable, type Duplex } from 'node:stream';
import type { Downstream, DownstreamEvents, PipelineRequest, TlsInfo } from '../../src/pipeline/downstream.ts';
import { holdWrites } from '../../src/http1/turn-writes.ts';
import type { HeaderMap } from '../../src/plugin/context.ts';
import { dateHeader, statusLine } from './wire.ts';

/** What an exchange needs from its connection. */
export interface ExchangeHost {
  readonly socket: Socket;
  readonly closing: boolean;
  readonly altSvc: string | undefined;
  /** `connection: keep-alive` + `keep-alive: timeout=N` lines. */
  readonly keepAliveLines: string;
  /** The request body asks for more bytes (the socket may resume). */
  bodyWanted(ex: H1Exchange): void;
  /** The response is complete (or aborted): the connection moves on. */
  exchangeEnded(ex: H1Exchange): void;
  /** The response could not be written immediately: the send timeout runs until drain. */
  writeBlocked(): void;
  /** The tunnel takes the socket over: the connection stops reading it. */
  detach(): void;
}

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
/** node:http's checkInvalidHeaderChar and checkIsHttpToken: a response head never carries CR/LF/NUL. */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;

/**
 * A held head goes out in one buffer with a first body chunk up to this size (a copy is cheaper than the writev
 * of a string and a buffer); larger chunks are written after it (the socket is corked for the turn).
 */
const COALESCE_MAX = 16 * 1024;

/** The request body as a Readable fed by the parser; reading it resumes the socket and sends 100 Continue. */
export class H1Body extends Readable {
  readonly ex: H1Exchange;

  constructor(ex: H1Exchange) {
    super();
    this.ex = ex;
  }

  override _read(): void {
    this.ex.host.bodyWanted(this.ex);
  }

  /** As node's IncomingMessage: an abort nobody listens for is not an uncaught error. */
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    cb(this.listenerCount('error') === 0 ? null : err);
  }
}

function badHeader(name: string): Error {
  const err = new Error(`invalid response header ${JSON.stringify(name)}`) as NodeJS.ErrnoException;
  err.code = 'ERR_INVALID_CHAR';
  return err;
}

export class H1Exchange implements PipelineRequest, Downstream {
  readonly host: ExchangeHost;
  readonly method: string;
  readonly target: string;
  readonly authority: string | null;
  readonly headers: HeaderMap;
  readonly httpVersion: string;
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly serverAddr: string;
  readonly serverPort: number;
  tls: TlsInfo | null = null;
  body: H1Body | null = null;
  upgrade = false;

  /** The client asked to keep the connection (llhttp's should_keep_alive). */
  readonly keepAlive: boolean;
  expectContinue = false;
  continueSent = false;
  /** An Expect other than 100-continue: answered 417 without running the pipeline (as node:http). */
  expectFailed = false;
  /** The request message was read to its end. */
  complete = false;
  /** The response ended (or was aborted): later writes are dropped. */
  ended = false;
  /** The connection stays open after this response. */
  keepOpen = false;
  /** Bytes read past the head of an upgrade request (handed to the tunnel). */
  rest: Buffer | null = null;
  events: DownstreamEvents | null = null;
  private sent = false;
  /**
   * The head, held back by head() so that it leaves with the first body bytes or the end in one write; flush()
   * (after the synchronous part of the response) sends it alone. No nextTick per response.
   */
  private heldHead: string | null = null;
  private chunked = false;
  private noBody = false;

  constructor(host: ExchangeHost, method: string, target: string, authority: string | null, headers: HeaderMap, httpVersion: string, keepAlive: boolean, addr: ConnAddr) {
    this.host = host;
    this.method = method;
    this.target = target;
    this.authority = authority;
    this.headers = headers;
    this.httpVersion = httpVersion;
    this.keepAlive = keepAlive;
    this.remoteAddr = addr.remoteAddr;
    this.remotePort = addr.remotePort;
    this.serverAddr = addr.serverAddr;
    this.serverPort = addr.serverPort;
  }

  get headSent(): boolean {
    return this.sent;
  }

  listen(events: DownstreamEvents): void {
    this.events = events;
  }

  /** Sends 100 Continue the first time the body is read (nginx's behaviour: not before the body is wanted). */
  sendContinue(): void {
    if (this.expectContinue && !this.continueSent && !this.sent && !this.ended) {
      this.continueSent = true;
      this.host.socket.write(CONTINUE, 'latin1');
    }
  }

  head(status: number, headers: HeaderMap): void {
    // hot path
    if (this.ended || this.sent) return;
    const bodyless = status < 200 || status === 204 || status === 304 || this.method === 'HEAD';
    let keep = this.keepAlive && !this.host.closing && !this.upgrade;
    let out = statusLine(status);
    let length = false;
    let date = false;
    for (const k in headers) {
      const v = headers[k];
      if (v === undefined) continue;
      switch (k) {
        case 'connection':
          if (String(v).toLowerCase().includes('close')) keep = false;
          continue;
        case 'transfer-encoding':
        case 'keep-alive':
          continue;
        case 'content-length':
          length = true;
          break;
        case 'date':
          date = true;
          break;
      }
      if (!TOKEN.test(k)) throw badHeader(k);
      if (typeof v === 'string') {
        if (BAD_VALUE.test(v)) throw badHeader(k);
        out += `${k}: ${v}\r\n`;
      } else if (Array.isArray(v)) {
        for (const x of v) {
          if (BAD_VALUE.test(x)) throw badHeader(k);
          out += `${k}: ${x}\r\n`;
        }
      } else out += `${k}: ${String(v)}\r\n`;
    }
    if (!date) out += dateHeader();
    const alt = this.host.altSvc;
    if (alt !== undefined && headers['alt-svc'] === undefined) out += `alt-svc: ${alt}\r\n`;
    this.chunked = !bodyless && !length && this.httpVersion === '1.1';
    // HTTP/1.0 without a length: the end of the connection ends the body.
    if (!bodyless && !length && !this.chunked) keep = false;
    // An unread body the client was told to wait for (no 100 Continue): it may come or not; close after this.
    if (!this.complete && this.expectContinue && !this.continueSent) keep = false;
    if (this.chunked) out += 'transfer-encoding: chunked\r\n';
    out += keep ? this.host.keepAliveLines : 'connection: close\r\n';
    this.keepOpen = keep;
    this.noBody = bodyless;
    this.sent = true;
    this.heldHead = `${out}\r\n`;
  }

  flush(): void {
    const h = this.heldHead;
    if (h === null) return;
    this.heldHead = null;
    holdWrites(this.host.socket);
    if (!this.host.socket.write(h, 'latin1')) this.host.writeBlocked();
  }

  data(chunk: Buffer): boolean {
    // hot path
    if (this.ended || this.noBody || chunk.length === 0) return true;
    const socket = this.host.socket;
    // Corked until the end of the turn: the pieces below leave in one writev.
    holdWrites(socket);
    const h = this.heldHead;
    let ok: boolean;
    if (this.chunked) {
      if (h !== null) {
        this.heldHead = null;
        socket.write(h, 'latin1');
      }
      socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      ok = socket.write('\r\n', 'latin1');
    } else if (h === null) ok = socket.write(chunk);
    else {
      this.heldHead = null;
      if (chunk.length <= COALESCE_MAX) {
        // The head is latin1 text: one byte per character.
        const buf = Buffer.allocUnsafe(h.length + chunk.length);
        buf.write(h, 0, 'latin1');
        chunk.copy(buf, h.length);
        ok = socket.write(buf);
      } else {
        socket.write(h, 'latin1');
        ok = socket.write(chunk);
      }
    }
    if (!ok) this.host.writeBlocked();
    return ok;
  }

  end(trailers: Record<string, string> | null): void {
    if (this.ended) return;
    const h = this.heldHead;
    this.heldHead = null;
    if (this.chunked || h !== null) holdWrites(this.host.socket);
    if (this.chunked) {
      let t = '0\r\n';
      if (trailers !== null) {
        for (const k in trailers) {
          const v = trailers[k]!;
          // A trailer that cannot be written safely is dropped: the body is already out.
          if (TOKEN.test(k) && !BAD_VALUE.test(v)) t += `${k}: ${v}\r\n`;
        }
      }
      this.host.socket.write(h === null ? `${t}\r\n` : `${h}${t}\r\n`, 'latin1');
    } else if (h !== null) this.host.socket.write(h, 'latin1');
    this.ended = true;
    this.host.exchangeEnded(this);
  }

  abort(): void {
    if (this.ended) return;
    this.heldHead = null;
    this.ended = true;
    this.keepOpen = false;
    this.host.socket.destroy();
    this.host.exchangeEnded(this);
  }

  takeover(): { socket: Duplex; head: Buffer } | null {
    if (!this.upgrade || this.ended) return null;
    this.flush();
    this.sent = true;
    this.ended = true;
    this.host.detach();
    return { socket: this.host.socket, head: this.rest ?? Buffer.alloc(0) };
  }
}

export interface ConnAddr {
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly serverAddr: string;
  readonly serverPort: number;
}
