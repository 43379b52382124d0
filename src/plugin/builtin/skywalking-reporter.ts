// The skywalking plugin's reporter: SkyWalking's HTTP JSON protocol as skywalking-nginx-lua's client.lua speaks
// it to the OAP (endpoint_addr). A timer, started by the first sampled request, runs every report_interval
// seconds: it POSTs /v3/management/reportProperties until the OAP accepts it once (200), /v3/management/keepAlive
// on later ticks, then the queued segments to /v3/segments as JSON arrays of at most 100. The next tick is
// scheduled when the current one has finished, so calls never pile up. Nothing here blocks a request: push() is
// synchronous, the queue is bounded (MAX_QUEUED; newer segments are dropped and counted when it is full), every
// OAP call has a 3 s deadline, and a failed segment POST drops its batch (as client.lua) and ends the tick, so a
// dead or hanging OAP costs at most one deadline per tick and a bounded amount of memory.
import { Agent, request } from 'undici';
import type { Logger } from '../../observability/logger.ts';

/** SkyWalking v3 SegmentObject, as JSON (language-agent/Tracing.proto field names). */
export interface SwSegment {
  readonly traceId: string;
  readonly traceSegmentId: string;
  readonly service: string;
  readonly serviceInstance: string;
  readonly spans: readonly SwSpan[];
}

export interface SwRef {
  readonly refType: 'CrossProcess';
  readonly traceId: string;
  readonly parentTraceSegmentId: string;
  readonly parentSpanId: number;
  readonly parentService: string;
  readonly parentServiceInstance: string;
  readonly parentEndpoint: string;
  readonly networkAddressUsedAtPeer: string;
}

export interface SwSpan {
  readonly spanId: number;
  readonly parentSpanId: number;
  readonly startTime: number;
  readonly endTime: number;
  readonly refs?: readonly SwRef[] | undefined;
  readonly operationName: string;
  readonly peer?: string;
  readonly spanType: 'Entry' | 'Exit';
  readonly spanLayer: 'Http';
  readonly componentId: number;
  readonly isError: boolean;
  readonly tags: readonly { readonly key: string; readonly value: string }[];
}

export interface ReporterOptions {
  /** OAP base address, e.g. http://127.0.0.1:12800 (no trailing slash). */
  readonly endpoint: string;
  readonly service: string;
  readonly instance: string;
  readonly intervalMs: number;
  readonly logger: Logger;
}

/** client.lua's SEGMENT_BATCH_COUNT. */
const BATCH = 100;
/** Segments held while the OAP is slow or away (about what APISIX's 10 MB tracing_buffer holds). */
export const MAX_QUEUED = 10_000;
const CALL_TIMEOUT_MS = 3000;

export class SkyWalkingReporter {
  readonly #o: ReporterOptions;
  readonly #agent: Agent;
  readonly #headers = { 'content-type': 'application/json' };
  #queue: SwSegment[] = [];
  #timer: NodeJS.Timeout | null = null;
  #started = false;
  #closed = false;
  #propertiesSent = false;
  #dropped = 0;

  constructor(o: ReporterOptions) {
    this.#o = o;
    this.#agent = new Agent({ connect: { timeout: CALL_TIMEOUT_MS }, headersTimeout: CALL_TIMEOUT_MS, bodyTimeout: CALL_TIMEOUT_MS, connections: 2 });
  }

  /** Queues a finished segment (log phase); starts the timer on first use, as APISIX's log phase does. */
  push(seg: SwSegment): void {
    if (this.#closed) return;
    if (this.#queue.length >= MAX_QUEUED) this.#dropped++;
    else this.#queue.push(seg);
    if (!this.#started) {
      this.#started = true;
      this.#schedule();
    }
  }

  /** Segments waiting for the next tick (for tests and diagnostics). */
  get queued(): number {
    return this.#queue.length;
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#tick(), this.#o.intervalMs);
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    this.#timer = null;
    try {
      await this.#management();
      await this.#sendSegments();
    } finally {
      this.#schedule();
    }
  }

  async #management(): Promise<void> {
    const { service, instance } = this.#o;
    if (!this.#propertiesSent) {
      const body = JSON.stringify({ service, serviceInstance: instance, properties: [{ key: 'language', value: 'nodejs' }] });
      const status = await this.#post('/v3/management/reportProperties', body);
      if (status === 200) this.#propertiesSent = true;
      else if (status !== 0) this.#o.logger.error({ status }, 'skywalking: instance report fails');
    } else {
      const status = await this.#post('/v3/management/keepAlive', JSON.stringify({ service, serviceInstance: instance }));
      if (status !== 200 && status !== 0) this.#o.logger.error({ status }, 'skywalking: agent ping fails');
    }
  }

  /** Sends the queue in batches; the first failure drops its batch and leaves the rest for the next tick. */
  async #sendSegments(): Promise<void> {
    if (this.#dropped > 0) {
      this.#o.logger.warn({ dropped: this.#dropped, max: MAX_QUEUED }, 'skywalking: segment queue full, segments dropped');
      this.#dropped = 0;
    }
    while (this.#queue.length > 0) {
      const batch = this.#queue.length <= BATCH ? this.#queue : this.#queue.slice(0, BATCH);
      this.#queue = this.#queue.length <= BATCH ? [] : this.#queue.slice(BATCH);
      const status = await this.#post('/v3/segments', JSON.stringify(batch));
      if (status !== 200) {
        if (status !== 0) this.#o.logger.error({ status, segments: batch.length }, 'skywalking: segment report fails');
        return;
      }
    }
  }

  /** One OAP call: the HTTP status, or 0 after a network error or deadline (logged here). */
  async #post(path: string, body: string): Promise<number> {
    try {
      const res = await request(this.#o.endpoint + path, { method: 'POST', headers: this.#headers, body, dispatcher: this.#agent });
      await res.body.dump();
      return res.statusCode;
    } catch (err) {
      this.#o.logger.error({ err, path }, 'skywalking: OAP call failed');
      return 0;
    }
  }

  /** Stops the timer; what is queued gets one last attempt, then the connections close. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#queue.length > 0) await this.#sendSegments();
    await this.#agent.close();
  }
}
