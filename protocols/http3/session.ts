// One HTTP/3 connection (RFC 9114 6): our control stream with SETTINGS and our QPACK decoder stream, the
// client's control and QPACK streams, request streams handed to H3Request, GOAWAY on graceful close, and
// connection errors closing the QUIC connection with the HTTP/3 code.
import type { ReadableStreamDefaultReader, WritableStreamDefaultWriter } from 'node:stream/web';
import type { QUICConnection, QUICStream } from '@matrixai/quic';
import type { Logger } from '../../src/observability/logger.ts';
import type { Downstream, PipelineRequest, TlsInfo } from '../../src/pipeline/downstream.ts';
import { hostTls } from '../../src/tls/host-check.ts';
import type { CertificateStore } from '../../src/tls/store.ts';
import {
  frame, FrameReader, H3Error, parseSettings, readVarint, settingsFrame, varint, varintLength, type FrameEvent,
  FRAME_DATA, FRAME_GOAWAY, FRAME_HEADERS, FRAME_MAX_PUSH_ID, FRAME_SETTINGS, FRAME_CANCEL_PUSH, FRAME_PUSH_PROMISE,
  RESERVED_H2_FRAMES, STREAM_CONTROL, STREAM_PUSH, STREAM_QPACK_DECODER, STREAM_QPACK_ENCODER,
  SETTINGS_MAX_FIELD_SECTION_SIZE, SETTINGS_QPACK_BLOCKED_STREAMS, SETTINGS_QPACK_MAX_TABLE_CAPACITY,
  H3_CLOSED_CRITICAL_STREAM, H3_FRAME_UNEXPECTED, H3_MISSING_SETTINGS, H3_NO_ERROR, H3_REQUEST_REJECTED,
  H3_STREAM_CREATION_ERROR, H3_INTERNAL_ERROR,
} from './frames.ts';
import { QpackDecoder, QpackError, type DecoderLimits, type Field } from './qpack.ts';
import { H3Request, type RequestHost } from './request.ts';

export interface SessionOptions {
  readonly qpack: DecoderLimits;
  readonly serverAddr: string;
  readonly serverPort: number;
  readonly tls: TlsInfo;
  /** The listener's certificate store (the ssl object a request's Host selects). */
  readonly certificates: () => CertificateStore | null;
  readonly handle: (req: PipelineRequest, down: Downstream) => void;
  readonly logger: Logger;
}

type Streamish = { connection: QUICConnection };

export class H3Session implements RequestHost {
  readonly conn: QUICConnection;
  private readonly opts: SessionOptions;
  readonly decoder: QpackDecoder;
  readonly maxFrame: number;
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly serverAddr: string;
  readonly serverPort: number;
  readonly tls: TlsInfo;
  /** tlsFor's last answer, for one authority and certificate store: a connection's requests nearly always carry one authority. */
  private lastAuthority = '';
  private lastStore: CertificateStore | null = null;
  private lastTls: TlsInfo;
  private control: WritableStreamDefaultWriter<Uint8Array> | null = null;
  private decoderOut: WritableStreamDefaultWriter<Uint8Array> | null = null;
  private readonly peerUni = new Set<number>();
  private readonly requests = new Set<H3Request>();
  /** Sections waiting for encoder-stream inserts: resolved when the insert count reaches theirs. */
  private readonly blocked = new Set<{ ric: number; wake: () => void }>();
  private maxRequestId = -4;
  private goingAway = false;
  private closed = false;
  private idle: (() => void) | null = null;

  constructor(conn: QUICConnection, opts: SessionOptions) {
    this.conn = conn;
    this.opts = opts;
    this.decoder = new QpackDecoder(opts.qpack);
    this.maxFrame = opts.qpack.maxFieldSectionSize + 1024;
    this.remoteAddr = normalize(conn.remoteHost);
    this.remotePort = conn.remotePort;
    this.serverAddr = opts.serverAddr;
    this.serverPort = opts.serverPort;
    this.tls = opts.tls;
    this.lastTls = opts.tls;
  }

  /** The connection's TLS facts for a request to `authority`: the HTTPS rule (src/tls/host-check.ts). */
  tlsFor(authority: string): TlsInfo {
    const store = this.opts.certificates();
    // hot path: the connection's usual authority under an unchanged store costs two compares.
    if (authority === this.lastAuthority && store === this.lastStore) return this.lastTls;
    const tls = hostTls(this.tls, authority, store);
    this.lastAuthority = authority;
    this.lastStore = store;
    this.lastTls = tls;
    return tls;
  }

  static connectionOf(stream: QUICStream): QUICConnection {
    return (stream as unknown as Streamish).connection;
  }

  /** Opens our control stream (SETTINGS) and QPACK decoder stream; the connection is established. */
  open(): void {
    if (this.control !== null || this.closed) return;
    try {
      const control = this.conn.newStream('uni');
      this.control = control.writable.getWriter() as WritableStreamDefaultWriter<Uint8Array>;
      const q = this.opts.qpack;
      this.send(this.control, Buffer.concat([
        varint(STREAM_CONTROL),
        settingsFrame([
          [SETTINGS_QPACK_MAX_TABLE_CAPACITY, q.maxTableCapacity],
          [SETTINGS_QPACK_BLOCKED_STREAMS, q.maxBlockedStreams],
          [SETTINGS_MAX_FIELD_SECTION_SIZE, q.maxFieldSectionSize],
        ]),
      ]));
      const dec = this.conn.newStream('uni');
      this.decoderOut = dec.writable.getWriter() as WritableStreamDefaultWriter<Uint8Array>;
      this.send(this.decoderOut, varint(STREAM_QPACK_DECODER));
    } catch (err) {
      this.opts.logger.debug?.({ err: (err as Error).message }, 'HTTP/3 could not open its control streams');
    }
  }

  /** A stream the client opened. */
  onStream(stream: QUICStream): void {
    const id = stream.streamId;
    if ((id & 0x3) === 0) this.onRequest(stream);
    else if ((id & 0x3) === 2) void this.onUni(stream);
    else stream.cancel(new H3Error(H3_STREAM_CREATION_ERROR, 'server-initiated stream id from the client'));
  }

  private onRequest(stream: QUICStream): void {
    const id = stream.streamId;
    if (id > this.maxRequestId) this.maxRequestId = id;
    if (this.goingAway || this.closed) {
      stream.cancel(new H3Error(H3_REQUEST_REJECTED, 'going away', true));
      return;
    }
    const req = new H3Request(stream, this);
    this.requests.add(req);
    void req.run();
  }

  private async onUni(stream: QUICStream): Promise<void> {
    const reader = stream.readable.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    let buf = Buffer.alloc(0);
    try {
      for (;;) {
        const r = await reader.read();
        if (r.done) {
          if (buf.length > 0) throw new H3Error(H3_STREAM_CREATION_ERROR, 'stream ended inside its type');
          return;
        }
        buf = Buffer.concat([buf, r.value]);
        if (buf.length >= varintLength(buf[0]!)) break;
      }
      const type = readVarint(buf, 0);
      const rest = buf.subarray(varintLength(buf[0]!));
      if (type === STREAM_PUSH) throw new H3Error(H3_STREAM_CREATION_ERROR, 'push stream from a client');
      if (type !== STREAM_CONTROL && type !== STREAM_QPACK_ENCODER && type !== STREAM_QPACK_DECODER) {
        // Unknown stream types (extensions, grease) are not read (RFC 9114 6.2).
        await reader.cancel(new H3Error(H3_STREAM_CREATION_ERROR, 'unknown stream type', true));
        return;
      }
      if (this.peerUni.has(type)) throw new H3Error(H3_STREAM_CREATION_ERROR, `second stream of type ${type}`);
      this.peerUni.add(type);
      if (type === STREAM_CONTROL) await this.readControl(reader, rest);
      else if (type === STREAM_QPACK_ENCODER) await this.readEncoder(reader, rest);
      else await this.drain(reader);
      if (!this.closed) throw new H3Error(H3_CLOSED_CRITICAL_STREAM, 'critical stream closed');
    } catch (err) {
      if (!this.closed) this.connectionError(asH3(err));
    }
  }

  private async readControl(reader: ReadableStreamDefaultReader<Uint8Array>, first: Buffer): Promise<void> {
    const frames = new FrameReader(this.maxFrame);
    const events: FrameEvent[] = [];
    let settings = false;
    let chunk: Uint8Array | null = first;
    for (;;) {
      if (chunk === null) {
        const r = await reader.read();
        if (r.done) return;
        chunk = r.value;
      }
      frames.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), events);
      chunk = null;
      for (const ev of events) {
        const type = ev.kind === 'data' ? FRAME_DATA : ev.type;
        if (!settings && type !== FRAME_SETTINGS) throw new H3Error(H3_MISSING_SETTINGS, 'control stream must start with SETTINGS');
        if (type === FRAME_SETTINGS) {
          if (settings) throw new H3Error(H3_FRAME_UNEXPECTED, 'second SETTINGS');
          settings = true;
          parseSettings((ev as { payload: Buffer }).payload);
        } else if (type === FRAME_GOAWAY) {
          // The client will open no more requests; ours finish normally.
        } else if (type === FRAME_DATA || type === FRAME_HEADERS || type === FRAME_PUSH_PROMISE || RESERVED_H2_FRAMES.has(type)) {
          throw new H3Error(H3_FRAME_UNEXPECTED, `frame 0x${type.toString(16)} on the control stream`);
        } else if (type === FRAME_MAX_PUSH_ID || type === FRAME_CANCEL_PUSH) {
          // We never push; these only bound or cancel pushes.
        }
      }
      events.length = 0;
    }
  }

  private async readEncoder(reader: ReadableStreamDefaultReader<Uint8Array>, first: Buffer): Promise<void> {
    let chunk: Uint8Array | null = first;
    for (;;) {
      if (chunk === null) {
        const r = await reader.read();
        if (r.done) return;
        chunk = r.value;
      }
      if (chunk.length > 0 && this.decoder.onEncoderStream(chunk)) {
        for (const b of this.blocked) if (b.ric <= this.decoder.insertCount) b.wake();
      }
      this.flushDecoder();
      chunk = null;
    }
  }

  private async drain(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    // The client's decoder stream acknowledges our encoder's inserts; ours never inserts, so it carries nothing
    // we act on.
    for (;;) if ((await reader.read()).done) return;
  }

  async decodeFields(block: Buffer, streamId: number): Promise<Field[]> {
    let wasBlocked = false;
    for (;;) {
      let r;
      try {
        r = this.decoder.decode(block, streamId, wasBlocked);
      } catch (err) {
        this.flushDecoder();
        if (err instanceof QpackError) throw new H3Error(err.code, err.message);
        throw err;
      }
      this.flushDecoder();
      if (!r.blocked) return r.fields;
      wasBlocked = true;
      const ric = r.requiredInsertCount;
      await new Promise<void>((resolve) => {
        const entry = { ric, wake: () => (this.blocked.delete(entry), resolve()) };
        this.blocked.add(entry);
      });
      if (this.closed) throw new H3Error(H3_INTERNAL_ERROR, 'connection closed', true);
    }
  }

  private flushDecoder(): void {
    const b = this.decoder.takeInstructions();
    if (b !== null && this.decoderOut !== null) this.send(this.decoderOut, b);
  }

  handle(req: PipelineRequest, down: Downstream): void {
    this.opts.handle(req, down);
  }

  done(req: H3Request): void {
    this.requests.delete(req);
    if (this.requests.size === 0) this.idle?.();
  }

  connectionError(err: H3Error): void {
    if (this.closed) return;
    this.opts.logger.debug?.({ code: err.code, err: err.message }, 'HTTP/3 connection error');
    this.terminate(err.code, err.message);
  }

  private terminate(code: number, reason: string): void {
    this.closed = true;
    for (const b of this.blocked) b.wake();
    for (const r of this.requests) r.destroy(code === H3_NO_ERROR ? H3_REQUEST_REJECTED : code);
    this.conn.stop({ isApp: true, errorCode: code, reason: Buffer.from(reason), force: true }).catch(() => undefined);
  }

  /**
   * Graceful close: GOAWAY naming the first request we will not process, in-flight requests finish (bounded
   * by `timeoutMs`), then the connection closes with H3_NO_ERROR.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    if (!this.goingAway) {
      this.goingAway = true;
      if (this.control !== null) this.send(this.control, frame(FRAME_GOAWAY, varint(this.maxRequestId + 4)));
    }
    if (this.requests.size > 0 && timeoutMs > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        t.unref();
        this.idle = () => (clearTimeout(t), resolve());
      });
    }
    this.terminate(H3_NO_ERROR, '');
  }

  /** The QUIC connection ended under us. */
  onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    for (const b of this.blocked) b.wake();
    for (const r of this.requests) r.destroy(H3_INTERNAL_ERROR);
  }

  private send(w: WritableStreamDefaultWriter<Uint8Array>, b: Uint8Array): void {
    w.write(b).catch(() => undefined);
  }
}

function asH3(err: unknown): H3Error {
  if (err instanceof H3Error) return err;
  if (err instanceof QpackError) return new H3Error(err.code, err.message);
  return new H3Error(H3_CLOSED_CRITICAL_STREAM, err instanceof Error ? err.message : String(err));
}

function normalize(a: string): string {
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

