// One HTTP/3 request stream (RFC 9114 4) adapted to the shared pipeline: the HEADERS field section becomes a
// PipelineRequest, DATA frames its body stream, and the pipeline's answer goes out through this Downstream as
// HEADERS, DATA and trailing HEADERS frames. Message errors reset the stream; frame errors close the connection.
import { Readable } from 'node:stream';
import type { ReadableStreamDefaultReader, ReadableStreamReadResult, WritableStreamDefaultWriter } from 'node:stream/web';
import type { QUICStream } from '@matrixai/quic';
import type { Downstream, DownstreamEvents, PipelineRequest, TlsInfo } from '../../src/pipeline/downstream.ts';
import type { HeaderMap } from '../../src/plugin/context.ts';
import {
  dataFrameHead, frame, FrameReader, H3Error, FRAME_HEADERS, RESERVED_H2_FRAMES,
  FRAME_CANCEL_PUSH, FRAME_GOAWAY, FRAME_MAX_PUSH_ID, FRAME_PUSH_PROMISE, FRAME_SETTINGS,
  H3_FRAME_UNEXPECTED, H3_INTERNAL_ERROR, H3_MESSAGE_ERROR, H3_NO_ERROR, H3_REQUEST_INCOMPLETE, type FrameEvent,
} from './frames.ts';
import { encodeFieldSection, FieldSectionTooLarge, type Field } from './qpack.ts';

/** What a request needs from its connection. */
export interface RequestHost {
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly serverAddr: string;
  readonly serverPort: number;
  /** The connection's TLS facts as they apply to a request for this authority. */
  tlsFor(authority: string): TlsInfo;
  readonly maxFrame: number;
  /** Decodes a field section, waiting while it is blocked on the encoder stream. */
  decodeFields(block: Buffer, streamId: number): Promise<Field[]>;
  handle(req: PipelineRequest, down: Downstream): void;
  connectionError(err: H3Error): void;
  done(req: H3Request): void;
}

/** Connection-specific fields are malformed in HTTP/3 (RFC 9114 4.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
/** Response fields that the adapter must not forward (hop-by-hop, or framing of another HTTP version). */
const HOP_BY_HOP = new Set([...CONNECTION_SPECIFIC, 'te', 'trailer', 'http2-settings']);
const FRAMES_NOT_ON_REQUESTS = new Set([FRAME_CANCEL_PUSH, FRAME_SETTINGS, FRAME_PUSH_PROMISE, FRAME_GOAWAY, FRAME_MAX_PUSH_ID]);

function malformed(msg: string): H3Error {
  return new H3Error(H3_MESSAGE_ERROR, msg, true);
}

/** Request body as a node Readable; reading from QUIC pauses while the consumer applies backpressure. */
class BodyStream extends Readable {
  private readonly owner: H3Request;
  constructor(owner: H3Request) {
    super({ highWaterMark: 64 * 1024 });
    this.owner = owner;
  }
  override _read(): void {
    this.owner.resumeBody();
  }
}

export class H3Request implements Downstream {
  readonly streamId: number;
  private readonly stream: QUICStream;
  private readonly host: RequestHost;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private readonly frames: FrameReader;
  private events: DownstreamEvents | null = null;
  private body: BodyStream | null = null;
  private bodyWaiter: (() => void) | null = null;
  private expectedLength = -1;
  private received = 0;
  private sent = false;
  private finished = false;
  private closed = false;
  private readDone = false;

  constructor(stream: QUICStream, host: RequestHost) {
    this.stream = stream;
    this.streamId = stream.streamId;
    this.host = host;
    this.frames = new FrameReader(host.maxFrame);
    this.reader = stream.readable.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    this.writer = stream.writable.getWriter() as WritableStreamDefaultWriter<Uint8Array>;
    this.writer.closed.then(
      () => this.close(),
      () => this.close(),
    );
  }

  /** Reads the request: HEADERS, then the body, then optional trailers (dropped: the pipeline has no use). */
  async run(): Promise<void> {
    const events: FrameEvent[] = [];
    try {
      let headers: Field[] | null = null;
      while (headers === null) {
        const r = await this.reader.read();
        if (r.done) throw new H3Error(H3_REQUEST_INCOMPLETE, 'stream ended before HEADERS', true);
        this.frames.push(Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength), events);
        while (events.length > 0 && headers === null) {
          const ev = events.shift()!;
          if (ev.kind === 'data') throw new H3Error(H3_FRAME_UNEXPECTED, 'DATA before HEADERS');
          if (ev.type === FRAME_HEADERS) headers = await this.host.decodeFields(ev.payload, this.streamId);
          else this.checkFrame(ev.type);
        }
      }
      const req = this.buildRequest(headers);
      // Whether a body follows: what came with HEADERS, content-length, else the next read (FIN or data).
      let pendingRead: ReadableStreamReadResult<Uint8Array> | null = null;
      let hasBody = events.length > 0 || this.expectedLength > 0;
      if (!hasBody && this.expectedLength !== 0) {
        pendingRead = await this.reader.read();
        hasBody = !pendingRead.done;
      }
      if (this.expectedLength === 0 && (events.length > 0 || pendingRead?.done === false)) {
        hasBody = true;
      }
      if (hasBody) this.body = new BodyStream(this);
      else this.readDone = true;
      this.host.handle({ ...req, body: this.body }, this);
      if (hasBody) await this.pumpBody(events, pendingRead);
    } catch (err) {
      this.fail(err);
    }
  }

  private checkFrame(type: number): void {
    if (RESERVED_H2_FRAMES.has(type) || FRAMES_NOT_ON_REQUESTS.has(type)) {
      throw new H3Error(H3_FRAME_UNEXPECTED, `frame 0x${type.toString(16)} on a request stream`);
    }
    // Unknown (extension, grease) frame types are ignored (RFC 9114 9).
  }

  private async pumpBody(events: FrameEvent[], first: ReadableStreamReadResult<Uint8Array> | null): Promise<void> {
    const body = this.body!;
    let trailers = false;
    const consume = (): void => {
      for (const ev of events) {
        if (ev.kind === 'data') {
          if (trailers) throw new H3Error(H3_FRAME_UNEXPECTED, 'DATA after trailers');
          this.received += ev.chunk.length;
          if (this.expectedLength >= 0 && this.received > this.expectedLength) throw malformed('body longer than content-length');
          if (ev.chunk.length > 0) body.push(ev.chunk);
        } else if (ev.type === FRAME_HEADERS) {
          if (trailers) throw new H3Error(H3_FRAME_UNEXPECTED, 'second trailer section');
          trailers = true;
        } else this.checkFrame(ev.type);
      }
      events.length = 0;
    };
    consume();
    let next = first;
    for (;;) {
      if (next === null) {
        if (body.readableLength >= body.readableHighWaterMark) await new Promise<void>((r) => (this.bodyWaiter = r));
        if (this.closed) return;
        next = await this.reader.read();
      }
      if (next.done) break;
      this.frames.push(Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength), events);
      consume();
      next = null;
    }
    if (!this.frames.atBoundary) throw new H3Error(H3_FRAME_UNEXPECTED, 'stream ended inside a frame');
    if (this.expectedLength >= 0 && this.received !== this.expectedLength) throw malformed('body shorter than content-length');
    this.readDone = true;
    body.push(null);
  }

  resumeBody(): void {
    const w = this.bodyWaiter;
    this.bodyWaiter = null;
    w?.();
  }

  private buildRequest(fields: Field[]): PipelineRequest {
    let method = '';
    let scheme = '';
    let path = '';
    let authority: string | null = null;
    let regular = false;
    const headers: HeaderMap = {};
    for (const [name, value] of fields) {
      if (name.charCodeAt(0) === 58) {
        if (regular) throw malformed('pseudo-header after regular fields');
        if (name === ':method' && method === '') method = value;
        else if (name === ':scheme' && scheme === '') scheme = value;
        else if (name === ':path' && path === '') path = value;
        else if (name === ':authority' && authority === null) authority = value;
        else throw malformed(`bad or repeated pseudo-header ${name}`);
        continue;
      }
      regular = true;
      if (name !== name.toLowerCase()) throw malformed('upper-case field name');
      if (CONNECTION_SPECIFIC.has(name) || (name === 'te' && value !== 'trailers')) throw malformed(`connection-specific field ${name}`);
      const prev = headers[name];
      // A name the map inherits (`constructor`) reads a function, not a previous value: the field is new.
      if (typeof prev !== 'string' && !Array.isArray(prev)) headers[name] = value;
      else if (name === 'cookie') headers[name] = `${String(prev)}; ${value}`;
      else if (name === 'set-cookie') headers[name] = Array.isArray(prev) ? [...prev, value] : [String(prev), value];
      else headers[name] = `${String(prev)}, ${value}`;
    }
    if (method === '' || (method !== 'CONNECT' && (scheme === '' || path === ''))) throw malformed('missing pseudo-headers');
    if (method === 'CONNECT') throw new H3Error(H3_MESSAGE_ERROR, 'CONNECT is not supported', true);
    // RFC 9114 4.3.1: :path is origin-form (or `*` for OPTIONS). An absolute-form one would let the pipeline
    // route a host other than :authority, which the SNI-vs-Host mTLS rule checked.
    if (path.charCodeAt(0) !== 47 && !(path === '*' && method === 'OPTIONS')) throw malformed('bad :path');
    const host = headers.host;
    if (authority === null && typeof host === 'string') authority = host;
    if (authority !== null && headers.host === undefined) headers.host = authority;
    const cl = headers['content-length'];
    if (typeof cl === 'string') {
      if (!/^\d{1,15}$/.test(cl)) throw malformed('bad content-length');
      this.expectedLength = Number(cl);
    }
    return {
      method,
      target: path,
      authority: authority ?? '',
      headers,
      httpVersion: '3',
      remoteAddr: this.host.remoteAddr,
      remotePort: this.host.remotePort,
      serverAddr: this.host.serverAddr,
      serverPort: this.host.serverPort,
      tls: this.host.tlsFor(authority ?? ''),
      body: null,
      upgrade: false,
    };
  }

  private fail(err: unknown): void {
    if (err instanceof FieldSectionTooLarge) {
      if (!this.sent) {
        this.head(431, { 'content-length': '0' });
        this.end(null);
      }
      return;
    }
    if (err instanceof H3Error && !err.stream) {
      this.host.connectionError(err);
      return;
    }
    if (this.closed) return;
    const code = err instanceof H3Error ? err.code : H3_INTERNAL_ERROR;
    this.body?.destroy(new Error(`HTTP/3 request stream error 0x${code.toString(16)}`));
    this.reset(code);
  }

  private reset(code: number): void {
    const reason = new H3Error(code, 'reset', true);
    this.reader.cancel(reason).catch(() => undefined);
    this.writer.abort(reason).catch(() => undefined);
    this.close();
  }

  /** The connection is going away: fail the exchange (the pipeline cancels its upstream request). */
  destroy(code: number): void {
    if (!this.closed) this.reset(code);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.resumeBody();
    if (!this.readDone) this.body?.destroy(new Error('HTTP/3 request stream closed'));
    this.events?.onClose();
    this.host.done(this);
  }

  // --- Downstream ---

  get headSent(): boolean {
    return this.sent;
  }

  head(status: number, headers: HeaderMap): void {
    this.sent = true;
    const fields: Field[] = [[':status', String(status)]];
    for (const k in headers) {
      const v = headers[k];
      if (v === undefined) continue;
      const name = k.toLowerCase();
      if (HOP_BY_HOP.has(name)) continue;
      if (Array.isArray(v)) for (const x of v) fields.push([name, String(x)]);
      else fields.push([name, String(v)]);
    }
    this.write(frame(FRAME_HEADERS, encodeFieldSection(fields)));
  }

  data(chunk: Buffer): boolean {
    if (chunk.length === 0 || this.closed) return true;
    this.write(dataFrameHead(chunk.length));
    this.write(chunk);
    if ((this.writer.desiredSize ?? 1) > 0) return true;
    this.writer.ready.then(() => this.events?.onDrain(), () => undefined);
    return false;
  }

  end(trailers: Record<string, string> | null): void {
    if (this.closed || this.finished) return;
    this.finished = true;
    if (trailers !== null && Object.keys(trailers).length > 0) {
      const fields: Field[] = [];
      for (const k in trailers) fields.push([k.toLowerCase(), trailers[k]!]);
      this.write(frame(FRAME_HEADERS, encodeFieldSection(fields)));
    }
    this.writer.close().catch(() => undefined);
    // The answer is complete: a request body nobody read any more is refused with H3_NO_ERROR (RFC 9114 4.1).
    if (!this.readDone) this.reader.cancel(new H3Error(H3_NO_ERROR, 'response complete', true)).catch(() => undefined);
  }

  abort(): void {
    this.destroy(H3_INTERNAL_ERROR);
  }

  listen(events: DownstreamEvents): void {
    this.events = events;
  }

  private write(b: Uint8Array): void {
    if (this.closed) return;
    this.writer.write(b).catch(() => undefined);
  }
}

