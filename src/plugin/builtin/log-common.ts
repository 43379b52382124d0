// What APISIX's loggers share (apisix/utils/log-util.lua, batch-processor-manager.lua): the log entry (the
// full log, or `log_format` from the conf or plugin_metadata with `$var` values), include_req_body /
// include_resp_body (bounded to 512 KiB each), and one batch processor per route conf that survives snapshot
// rebuilds (keyed by the plugin's scope and conf; released when no instance uses it, after a flush).
import os from 'node:os';
import type { JsonObject } from '../../config/resources.ts';
import { batchConfOf, batchSchemaProps, BatchProcessor, type BatchSink } from '../../observability/batch-processor.ts';
import { VERSION } from '../../version.ts';
import type { HeaderMap, HttpContext } from '../context.ts';
import type { PluginEnv, PluginInstance } from '../plugin.ts';

export const MAX_BODY_BYTES = 512 * 1024;
const HOSTNAME = os.hostname();

/** Properties common to APISIX's loggers (log_format and the body switches). */
export const LOG_PROPS: Record<string, Record<string, unknown>> = {
  log_format: { type: 'object' },
  include_req_body: { type: 'boolean', default: false },
  include_req_body_expr: { type: 'array', minItems: 1, items: { type: 'array' } },
  include_resp_body: { type: 'boolean', default: false },
  include_resp_body_expr: { type: 'array', minItems: 1, items: { type: 'array' } },
};

export const LOG_METADATA_SCHEMA: JsonObject = { type: 'object', properties: { log_format: { type: 'object' } } };

export function loggerSchema(props: Record<string, unknown>, required: string[], batchName: string | null): JsonObject {
  return {
    type: 'object',
    properties: { ...props, ...LOG_PROPS, ...(batchName === null ? {} : batchSchemaProps(batchName)) },
    ...(required.length > 0 ? { required } : {}),
  } as JsonObject;
}

/** Compiled log_format: [key, variable name or null, literal]. */
type Format = readonly (readonly [string, string | null, unknown])[];

function compileFormat(f: unknown): Format | null {
  if (f === null || typeof f !== 'object' || Array.isArray(f)) return null;
  return Object.entries(f as Record<string, unknown>).map(([k, v]) =>
    typeof v === 'string' && v.startsWith('$') ? ([k, v.slice(1), null] as const) : ([k, null, v] as const),
  );
}

function plainHeaders(h: HeaderMap): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k in h) {
    const v = h[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

function querystring(query: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(query)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

export interface LogOptions {
  readonly format: Format | null;
  readonly includeReqBody: boolean;
  readonly includeRespBody: boolean;
}

export function logOptions(conf: JsonObject, env: PluginEnv): LogOptions {
  return {
    format: compileFormat(conf.log_format) ?? compileFormat(env.metadata?.log_format),
    includeReqBody: conf.include_req_body === true,
    includeRespBody: conf.include_resp_body === true,
  };
}

const RESP_BODY = 'log-common:resp-body';
const REQ_BODY = 'log-common:req-body';

function requestBody(ctx: HttpContext): string | undefined {
  return (ctx.pluginData.get(REQ_BODY) as Buffer | undefined)?.subarray(0, MAX_BODY_BYTES).toString();
}

/** APISIX's log entry for `ctx` (log phase). */
export function logEntry(ctx: HttpContext, o: LogOptions): Record<string, unknown> {
  const vars = ctx.vars;
  const routeId = ctx.routeId === '' ? undefined : ctx.routeId;
  if (o.format !== null) {
    const e: Record<string, unknown> = {};
    for (const [k, v, lit] of o.format) e[k] = v === null ? lit : v === 'request_body' ? requestBody(ctx) : vars.get(v);
    if (routeId !== undefined) {
      e.route_id = routeId;
      e.service_id = ctx.serviceId;
    }
    return e;
  }
  const rq = ctx.request;
  const latency = Number(process.hrtime.bigint() - ctx.startNs) / 1e6;
  const up = ctx.upstreamLatencyMs;
  const requestUri = String(vars.get('request_uri') ?? rq.path);
  const entry: Record<string, unknown> = {
    request: {
      url: `${rq.scheme}://${rq.host}:${rq.serverPort}${requestUri}`,
      uri: requestUri,
      method: rq.method,
      headers: plainHeaders(rq.headers),
      querystring: querystring(rq.query),
      size: Number(rq.headers['content-length'] ?? 0) || 0,
    },
    response: { status: ctx.response.status, headers: plainHeaders(ctx.response.headers), size: ctx.bytesSent ?? 0 },
    server: { hostname: HOSTNAME, version: VERSION },
    upstream: ctx.upstreamAddr,
    service_id: routeId === undefined ? rq.host : (ctx.serviceId ?? ''),
    route_id: routeId,
    consumer: ctx.consumer === null ? undefined : { username: ctx.consumer.username },
    client_ip: rq.remoteAddr,
    start_time: Date.now() - Math.round(latency),
    latency,
    upstream_latency: up,
    apisix_latency: up === undefined ? latency : Math.max(0, latency - up),
  };
  if (o.includeReqBody) (entry.request as Record<string, unknown>).body = requestBody(ctx);
  if (o.includeRespBody) {
    const chunks = ctx.pluginData.get(RESP_BODY) as Buffer[] | undefined;
    if (chunks !== undefined) (entry.response as Record<string, unknown>).body = Buffer.concat(chunks).toString();
  }
  return entry;
}

/** Reads the request body before it is proxied (include_req_body): the proxy then sends the buffered copy. */
export async function captureRequestBody(ctx: HttpContext): Promise<void> {
  ctx.pluginData.set(REQ_BODY, await ctx.request.readBody());
}

/** body_filter of include_resp_body: keeps up to MAX_BODY_BYTES of the response body, passes chunks on. */
export function collectResponseBody(ctx: HttpContext, chunk: Buffer): Buffer {
  let chunks = ctx.pluginData.get(RESP_BODY) as Buffer[] | undefined;
  if (chunks === undefined) {
    chunks = [];
    ctx.pluginData.set(RESP_BODY, chunks);
  }
  let have = 0;
  for (const c of chunks) have += c.length;
  if (have < MAX_BODY_BYTES && chunk.length > 0) chunks.push(chunk.subarray(0, MAX_BODY_BYTES - have));
  return chunk;
}

interface Shared {
  processor: BatchProcessor<unknown>;
  refs: number;
}
const processors = new Map<string, Shared>();

/** The batch processor of one (plugin, scope, conf); shared by the instances of successive snapshots. */
export function acquireProcessor<T>(plugin: string, conf: JsonObject, env: PluginEnv, sink: BatchSink<T>): { processor: BatchProcessor<T>; release(): void } {
  const key = `${plugin}\u0001${env.scopeKey}\u0001${JSON.stringify(conf)}`;
  let s = processors.get(key);
  if (s === undefined) {
    const bc = batchConfOf(conf as Record<string, unknown>, plugin);
    const log = env.logger;
    const p = new BatchProcessor<T>(bc, sink, (err, n, retry) =>
      log.error({ err, entries: n, processor: bc.name, retry }, retry ? 'batch processor failed to send, retrying' : 'batch processor dropping entries'),
    );
    s = { processor: p as BatchProcessor<unknown>, refs: 0 };
    processors.set(key, s);
  }
  s.refs++;
  const shared = s;
  let released = false;
  return {
    processor: shared.processor as BatchProcessor<T>,
    release() {
      if (released) return;
      released = true;
      // The next snapshot's instance usually acquired it already; flush only when the last user goes.
      setImmediate(() => {
        if (--shared.refs > 0) return;
        processors.delete(key);
        void shared.processor.flush();
      });
    },
  };
}

/** A batching logger: entry per request into the shared processor. */
export class BatchLogger implements PluginInstance {
  readonly #opts: LogOptions;
  readonly #processor: BatchProcessor<Record<string, unknown>>;
  readonly #release: () => void;
  readonly #routeDefault: string | null;

  constructor(opts: LogOptions, handle: { processor: BatchProcessor<Record<string, unknown>>; release(): void }, routeDefault: string | null) {
    this.#opts = opts;
    this.#processor = handle.processor;
    this.#release = handle.release;
    this.#routeDefault = routeDefault;
    if (opts.includeReqBody) this.access = captureRequestBody;
    if (opts.includeRespBody) this.body_filter = collectResponseBody;
  }

  access?: (ctx: HttpContext) => Promise<void>;
  body_filter?: (ctx: HttpContext, chunk: Buffer) => Buffer;

  log(ctx: HttpContext): void {
    const e = logEntry(ctx, this.#opts);
    if (e.route_id === undefined && this.#routeDefault !== null) e.route_id = this.#routeDefault;
    this.#processor.push(e);
  }

  destroy(): void {
    this.#release();
  }
}

/** APISIX sends one entry as an object, several as an array. */
export function encodeBatch(entries: readonly unknown[]): string {
  return JSON.stringify(entries.length === 1 ? entries[0] : entries);
}
