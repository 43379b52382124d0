// OTLP/HTTP trace export as APISIX's opentelemetry plugin does it (opentelemetry-lua): spans are encoded as a
// binary protobuf ExportTraceServiceRequest (opentelemetry/proto/collector/trace/v1, field numbers of the
// official .proto files) and POSTed to the collector with Content-Type application/x-protobuf; a non-200
// answer or a network error is retried up to 3 times with a random back-off below 2^n seconds, inside a 10 s
// budget. Spans are queued by a batch span processor with opentelemetry-lua's semantics (max_queue_size,
// max_export_batch_size, batch_timeout, inactive_timeout, drop_on_queue_full) and never delay a request.
// The wire encoding uses protobufjs' Writer; field layout is written down here so no reflection runs per span.
import protobuf from 'protobufjs';
import { request } from 'undici';
import type { Logger } from './logger.ts';
import { countDropped, registerBatchSource, type BatchSource } from './batch-processor.ts';

export const SPAN_KIND_SERVER = 2;
export const STATUS_ERROR = 2;

/** An attribute value typed as opentelemetry-lua types it (attr.string / int / double / bool). */
export type AttrValue =
  | { readonly s: string | undefined }
  | { readonly i: number }
  | { readonly d: number }
  | { readonly b: boolean };

export interface Attribute {
  readonly key: string;
  readonly value: AttrValue;
}

export interface FinishedSpan {
  readonly traceId: Buffer;
  readonly spanId: Buffer;
  readonly parentSpanId: Buffer | null;
  readonly traceState: string;
  /** W3C trace flags of the span context. */
  readonly traceFlags: number;
  readonly parentRemote: boolean;
  readonly name: string;
  readonly kind: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly attributes: readonly Attribute[];
  readonly status: { readonly code: number; readonly message: string } | null;
}

export interface Scope {
  readonly name: string;
  readonly version: string;
}

// SpanFlags (trace.proto): the context-has-is-remote bit, and the is-remote bit of the parent.
const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;
const MASK32 = 0xffffffffn;

function fixed64(w: protobuf.Writer, field: number, v: bigint): void {
  w.uint32((field << 3) | 1)
    .fixed32(Number(v & MASK32))
    .fixed32(Number((v >> 32n) & MASK32));
}

function anyValue(w: protobuf.Writer, v: AttrValue): void {
  if ('s' in v) {
    if (v.s !== undefined) w.uint32((1 << 3) | 2).string(v.s);
  } else if ('b' in v) w.uint32((2 << 3) | 0).bool(v.b);
  else if ('i' in v) w.uint32((3 << 3) | 0).int64(Math.trunc(v.i));
  else w.uint32((4 << 3) | 1).double(v.d);
}

function keyValue(w: protobuf.Writer, field: number, a: Attribute): void {
  w.uint32((field << 3) | 2).fork();
  w.uint32((1 << 3) | 2).string(a.key);
  w.uint32((2 << 3) | 2).fork();
  anyValue(w, a.value);
  w.ldelim();
  w.ldelim();
}

function span(w: protobuf.Writer, s: FinishedSpan): void {
  w.uint32((2 << 3) | 2).fork();
  w.uint32((1 << 3) | 2).bytes(s.traceId);
  w.uint32((2 << 3) | 2).bytes(s.spanId);
  if (s.traceState !== '') w.uint32((3 << 3) | 2).string(s.traceState);
  if (s.parentSpanId !== null) w.uint32((4 << 3) | 2).bytes(s.parentSpanId);
  w.uint32((5 << 3) | 2).string(s.name);
  w.uint32((6 << 3) | 0).int32(s.kind);
  fixed64(w, 7, s.startNs);
  fixed64(w, 8, s.endNs);
  for (const a of s.attributes) keyValue(w, 9, a);
  if (s.status !== null) {
    w.uint32((15 << 3) | 2).fork();
    if (s.status.message !== '') w.uint32((2 << 3) | 2).string(s.status.message);
    w.uint32((3 << 3) | 0).int32(s.status.code);
    w.ldelim();
  }
  const flags = (s.traceFlags & 0xff) | (s.parentSpanId === null ? 0 : HAS_IS_REMOTE | (s.parentRemote ? IS_REMOTE : 0));
  w.uint32((16 << 3) | 5).fixed32(flags);
  w.ldelim();
}

/** ExportTraceServiceRequest with one ResourceSpans (one resource, one scope). */
export function encodeExportRequest(resource: readonly Attribute[], scope: Scope, spans: readonly FinishedSpan[]): Uint8Array {
  const w = protobuf.Writer.create();
  w.uint32((1 << 3) | 2).fork(); // resource_spans
  w.uint32((1 << 3) | 2).fork(); // resource
  for (const a of resource) keyValue(w, 1, a);
  w.ldelim();
  w.uint32((2 << 3) | 2).fork(); // scope_spans
  w.uint32((1 << 3) | 2).fork(); // scope
  w.uint32((1 << 3) | 2).string(scope.name);
  if (scope.version !== '') w.uint32((2 << 3) | 2).string(scope.version);
  w.ldelim();
  for (const s of spans) span(w, s);
  w.ldelim();
  w.ldelim();
  return w.finish();
}

/** opentelemetry-lua's build_uri: a bare host:port gets http:// and an empty path gets /v1/traces. */
export function collectorUrl(address: string): string {
  const withScheme = /^https?:\/\//i.test(address) ? address : `http://${address}`;
  const u = new URL(withScheme);
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/v1/traces';
  return u.toString();
}

export interface ExporterOptions {
  readonly address: string;
  /** Seconds. */
  readonly requestTimeout: number;
  readonly headers: Readonly<Record<string, string>>;
}

const RETRY_LIMIT = 3;
const EXPORT_BUDGET_MS = 10_000;

export class OtlpExporter {
  readonly #url: string;
  readonly #timeoutMs: number;
  readonly #headers: Record<string, string>;

  constructor(o: ExporterOptions) {
    this.#url = collectorUrl(o.address);
    this.#timeoutMs = o.requestTimeout * 1000;
    this.#headers = { ...o.headers, 'content-type': 'application/x-protobuf' };
  }

  async #once(body: Uint8Array): Promise<void> {
    const res = await request(this.#url, { method: 'POST', headers: this.#headers, body, headersTimeout: this.#timeoutMs, bodyTimeout: this.#timeoutMs });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`request failed: ${res.statusCode}`);
  }

  /** Sends one encoded request with opentelemetry-lua's retries; rejects with the last error. */
  async export(body: Uint8Array): Promise<void> {
    const started = Date.now();
    let failures = 0;
    let last: unknown = new Error('unknown');
    while (failures < RETRY_LIMIT) {
      if (Date.now() - started > EXPORT_BUDGET_MS) throw new Error(`Collector retries timed out (timeout ${EXPORT_BUDGET_MS})`);
      try {
        await this.#once(body);
        return;
      } catch (err) {
        last = err;
        failures++;
        if (failures < RETRY_LIMIT) await new Promise((r) => setTimeout(r, Math.random() * 2 ** failures * 1000).unref());
      }
    }
    throw last;
  }
}

export interface BatchSpanOptions {
  readonly dropOnQueueFull: boolean;
  readonly maxQueueSize: number;
  /** Seconds. */
  readonly batchTimeout: number;
  /** Seconds. */
  readonly inactiveTimeout: number;
  readonly maxExportBatchSize: number;
}

/** opentelemetry-lua's defaults for batch_span_processor fields left out of the plugin metadata. */
export function batchSpanOptions(conf: Record<string, unknown> | undefined): BatchSpanOptions {
  const n = (k: string, d: number) => (typeof conf?.[k] === 'number' && (conf[k] as number) > 0 ? (conf[k] as number) : d);
  const batch = n('max_export_batch_size', 256);
  return {
    dropOnQueueFull: conf?.drop_on_queue_full !== false,
    maxQueueSize: Math.max(n('max_queue_size', 2048), batch + 1),
    batchTimeout: n('batch_timeout', 5),
    inactiveTimeout: n('inactive_timeout', 2),
    maxExportBatchSize: batch,
  };
}

/**
 * Queues finished spans and exports them in batches: a full batch (max_export_batch_size) or, once
 * batch_timeout passed since its first span, a partial one goes out when the inactive_timeout timer fires.
 * At most max_queue_size spans wait; beyond that a span is dropped (drop_on_queue_full) or the ready batches
 * go out at once. Exports run one batch after another, so a slow collector holds at most the queue.
 */
export class BatchSpanProcessor implements BatchSource {
  readonly name: string;
  readonly routeId = '';
  readonly serverAddr = '';
  readonly stats = { exported: 0, dropped: 0 };
  readonly #o: BatchSpanOptions;
  readonly #send: (spans: FinishedSpan[]) => Promise<void>;
  readonly #log: Logger;
  #queue: FinishedSpan[] = [];
  #firstAt = 0;
  #ready: FinishedSpan[][] = [];
  #timer: NodeJS.Timeout | null = null;
  #exporting: Promise<void> = Promise.resolve();
  readonly #unregister: () => void;

  constructor(o: BatchSpanOptions, send: (spans: FinishedSpan[]) => Promise<void>, log: Logger, name = 'opentelemetry') {
    this.#o = o;
    this.#send = send;
    this.#log = log;
    this.name = name;
    this.#unregister = registerBatchSource(this);
  }

  #drop(n: number): void {
    this.stats.dropped += n;
    countDropped(this.name, n);
  }

  buffered(): number {
    return this.#size();
  }

  #size(): number {
    return this.#queue.length + this.#ready.length * this.#o.maxExportBatchSize;
  }

  onEnd(s: FinishedSpan): void {
    if (this.#size() >= this.#o.maxQueueSize) {
      if (this.#o.dropOnQueueFull) {
        this.#drop(1);
        return;
      }
      this.#exportReady();
    }
    this.#queue.push(s);
    if (this.#queue.length === 1) this.#firstAt = Date.now();
    if (this.#queue.length >= this.#o.maxExportBatchSize) {
      this.#ready.push(this.#queue);
      this.#queue = [];
    }
    if (this.#timer === null) this.#arm(this.#o.inactiveTimeout);
  }

  #arm(seconds: number): void {
    this.#timer = setTimeout(this.#tick, seconds * 1000);
    this.#timer.unref();
  }

  readonly #tick = (): void => {
    this.#timer = null;
    if (this.#queue.length > 0 && Date.now() - this.#firstAt >= this.#o.batchTimeout * 1000) {
      this.#ready.push(this.#queue);
      this.#queue = [];
    }
    this.#exportReady();
    if (this.#queue.length > 0) this.#arm(this.#o.inactiveTimeout);
  };

  #exportReady(): void {
    const batches = this.#ready;
    if (batches.length === 0) return;
    this.#ready = [];
    this.#exporting = this.#exporting.then(async () => {
      for (const b of batches) {
        try {
          await this.#send(b);
          this.stats.exported += b.length;
        } catch (err) {
          this.#drop(b.length);
          this.#log.error({ err, spans: b.length }, 'failed to export spans to the OpenTelemetry collector');
        }
      }
    });
  }

  /** Exports everything queued; resolves when sent (shutdown, metadata change). */
  async flush(): Promise<void> {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#queue.length > 0) {
      this.#ready.push(this.#queue);
      this.#queue = [];
    }
    this.#exportReady();
    await this.#exporting;
  }

  close(): Promise<void> {
    this.#unregister();
    return this.flush();
  }
}
