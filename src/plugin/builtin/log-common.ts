// What APISIX's loggers share (apisix/utils/log-util.lua, batch-processor-manager.lua, as of 3.18): the log
// entry (the full log, or `log_format` from the conf or plugin_metadata with `$var` values, nested objects
// resolved up to depth 5), `log_format_extra` (fields added to the full log, never replacing a default one),
// include_req_body / include_resp_body with their include_*_body_expr filters and max_*_body_bytes bounds,
// one batch processor per route conf that survives snapshot rebuilds (keyed by the plugin's scope and conf;
// released when no instance uses it, after a flush), and the plugin-wide backlog bound `max_pending_entries`
// of plugin_metadata.
import os from 'node:os';
import type { JsonObject } from '../../config/resources.ts';
import { batchConfOf, batchSchemaProps, BatchProcessor, countDropped, type BatchSink } from '../../observability/batch-processor.ts';
import type { Logger } from '../../observability/logger.ts';
import { compileExpr, evalExpr, type CompiledExpr } from '../../router/expr.ts';
import type { Vars } from '../../router/vars.ts';
import { VERSION } from '../../version.ts';
import type { HeaderMap, HttpContext } from '../context.ts';
import type { PhaseResult, PluginEnv, PluginInstance } from '../plugin.ts';
import { llmLogFields } from './ai/state.ts';

/** Default of max_req_body_bytes and max_resp_body_bytes (APISIX's MAX_REQ_BODY / MAX_RESP_BODY). */
export const MAX_BODY_BYTES = 512 * 1024;
/** Default of plugin_metadata max_pending_entries (APISIX batch-processor-manager.lua). */
export const DEFAULT_MAX_PENDING_ENTRIES = 8192;
const MAX_LOG_FORMAT_DEPTH = 5;
const HOSTNAME = os.hostname();

/** Properties common to APISIX's loggers (log_format, log_format_extra, the body switches and bounds). */
export const LOG_PROPS: Record<string, Record<string, unknown>> = {
  log_format: { type: 'object' },
  log_format_extra: { type: 'object' },
  include_req_body: { type: 'boolean', default: false },
  include_req_body_expr: { type: 'array', minItems: 1, items: { type: 'array' } },
  include_resp_body: { type: 'boolean', default: false },
  include_resp_body_expr: { type: 'array', minItems: 1, items: { type: 'array' } },
  max_req_body_bytes: { type: 'integer', minimum: 1, default: MAX_BODY_BYTES },
  max_resp_body_bytes: { type: 'integer', minimum: 1, default: MAX_BODY_BYTES },
};

/** plugin_metadata of a logger without a batch processor (file-logger). */
export const LOG_METADATA_SCHEMA: JsonObject = { type: 'object', properties: { log_format: { type: 'object' }, log_format_extra: { type: 'object' } } };

/** plugin_metadata of a batching logger: max_pending_entries bounds the entries waiting in all its processors. */
export const BATCH_LOG_METADATA_SCHEMA: JsonObject = {
  type: 'object',
  properties: {
    ...(LOG_METADATA_SCHEMA.properties as JsonObject),
    max_pending_entries: { type: 'integer', minimum: 1, default: DEFAULT_MAX_PENDING_ENTRIES },
  },
};

export function loggerSchema(props: Record<string, unknown>, required: string[], batchName: string | null): JsonObject {
  return {
    type: 'object',
    properties: { ...props, ...LOG_PROPS, ...(batchName === null ? {} : batchSchemaProps(batchName)) },
    ...(required.length > 0 ? { required } : {}),
  } as JsonObject;
}

/**
 * The config-time check APISIX's http-logger and loki-logger make (log_util.check_log_schema): both body
 * expressions must compile. The other loggers accept a broken expression, as APISIX does, and never include
 * that body (see logOptions).
 */
export function checkBodyExprs(conf: JsonObject): string | null {
  for (const field of ['include_req_body_expr', 'include_resp_body_expr']) {
    if (conf[field] === undefined) continue;
    try {
      compileExpr(conf[field]);
    } catch (err) {
      return `failed to validate the '${field}' expression: ${(err as Error).message}`;
    }
  }
  return null;
}

const VAR = 0;
const LITERAL = 1;
const NESTED = 2;
/** Compiled log_format: [key, VAR and a variable name | LITERAL and a value | NESTED and a sub-format]. */
type FormatItem = readonly [string, typeof VAR, string] | readonly [string, typeof LITERAL, unknown] | readonly [string, typeof NESTED, Format];
interface Format {
  readonly items: readonly FormatItem[];
  /** A JSON array in the conf: the entry part is an array too. */
  readonly array: boolean;
}

function compileFormatAt(f: object, depth: number): Format {
  const items: FormatItem[] = [];
  for (const [k, v] of Object.entries(f)) {
    if (v !== null && typeof v === 'object') {
      // APISIX keeps a table nested deeper than MAX_LOG_FORMAT_DEPTH as an empty one.
      items.push([k, NESTED, depth >= MAX_LOG_FORMAT_DEPTH ? { items: [], array: false } : compileFormatAt(v as object, depth + 1)]);
    } else if (typeof v === 'string' && v.startsWith('$')) items.push([k, VAR, v.slice(1)]);
    else items.push([k, LITERAL, v]);
  }
  return { items, array: Array.isArray(f) };
}

function compileFormat(f: unknown): Format | null {
  if (f === null || typeof f !== 'object' || Array.isArray(f)) return null;
  return compileFormatAt(f, 1);
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
  /** log_format_extra (conf, else plugin_metadata); only used with the full log (no log_format). */
  readonly extra: Format | null;
  readonly includeReqBody: boolean;
  readonly includeRespBody: boolean;
  /** include_req_body_expr, evaluated in the access phase (read the body?) and again in the log phase. */
  readonly reqBodyExpr: CompiledExpr | null;
  /** include_resp_body_expr, evaluated once per request at the first response body chunk. */
  readonly respBodyExpr: CompiledExpr | null;
  readonly maxReqBodyBytes: number;
  readonly maxRespBodyBytes: number;
  /** This instance's slot in ctx.pluginData for the response body it collects (bounds and filters differ per logger). */
  readonly respBodyKey: string;
}

let instances = 0;

function compileBodyExpr(conf: JsonObject, field: string, log: Logger): CompiledExpr | null | false {
  if (conf[field] === undefined) return null;
  try {
    return compileExpr(conf[field]);
  } catch (err) {
    // APISIX logs "generate request expr err" on every request and leaves the body out; once is enough.
    log.error({ err, field }, 'logger body expression does not compile; the body is never logged');
    return false;
  }
}

export function logOptions(conf: JsonObject, env: PluginEnv): LogOptions {
  const reqExpr = conf.include_req_body === true ? compileBodyExpr(conf, 'include_req_body_expr', env.logger) : null;
  const respExpr = conf.include_resp_body === true ? compileBodyExpr(conf, 'include_resp_body_expr', env.logger) : null;
  // The conf's log_format_extra wins even when empty; plugin_metadata's is the fallback (log-util.lua).
  const extra = conf.log_format_extra !== undefined ? conf.log_format_extra : env.metadata?.log_format_extra;
  const extraFormat = compileFormat(extra);
  return {
    format: compileFormat(conf.log_format) ?? (hasKeys(env.metadata?.log_format) ? compileFormat(env.metadata?.log_format) : null),
    extra: extraFormat !== null && extraFormat.items.length > 0 ? extraFormat : null,
    includeReqBody: conf.include_req_body === true && reqExpr !== false,
    includeRespBody: conf.include_resp_body === true && respExpr !== false,
    reqBodyExpr: reqExpr === false ? null : reqExpr,
    respBodyExpr: respExpr === false ? null : respExpr,
    maxReqBodyBytes: typeof conf.max_req_body_bytes === 'number' ? conf.max_req_body_bytes : MAX_BODY_BYTES,
    maxRespBodyBytes: typeof conf.max_resp_body_bytes === 'number' ? conf.max_resp_body_bytes : MAX_BODY_BYTES,
    respBodyKey: `log-common:resp-body:${++instances}`,
  };
}

function hasKeys(v: unknown): boolean {
  return v !== null && typeof v === 'object' && Object.keys(v).length > 0;
}

const REQ_BODY = 'log-common:req-body';

function requestBody(ctx: HttpContext, max: number): string | undefined {
  return (ctx.pluginData.get(REQ_BODY) as Buffer | undefined)?.subarray(0, max).toString();
}

function buildFormat(ctx: HttpContext, f: Format, maxReq: number): Record<string, unknown> | unknown[] {
  const vars = ctx.vars;
  const e: Record<string, unknown> = {};
  for (const item of f.items) {
    const k = item[0];
    if (item[1] === VAR) e[k] = item[2] === 'request_body' ? requestBody(ctx, maxReq) : vars.get(item[2]);
    else if (item[1] === NESTED) e[k] = buildFormat(ctx, item[2], maxReq);
    else e[k] = item[2];
  }
  return f.array ? Object.values(e) : e;
}

/** The log_format_extra fields for `ctx` (splunk-hec-logging adds them to its fixed event). */
export function extraEntry(ctx: HttpContext, o: LogOptions): Record<string, unknown> | null {
  return o.extra === null || o.format !== null ? null : (buildFormat(ctx, o.extra, o.maxReqBodyBytes) as Record<string, unknown>);
}

function wantReqBody(o: LogOptions, vars: Vars): boolean {
  return o.includeReqBody && (o.reqBodyExpr === null || evalExpr(o.reqBodyExpr, vars));
}

/** APISIX log-util: the LLM fields of ai-proxy(-multi) `logging` go into every logger's entry, custom format or not. */
function addLlmFields(ctx: HttpContext, entry: Record<string, unknown>): void {
  const llm = llmLogFields(ctx);
  if (llm !== null) for (const k in llm) entry[k] = llm[k];
}

/** APISIX's log entry for `ctx` (log phase). */
export function logEntry(ctx: HttpContext, o: LogOptions): Record<string, unknown> {
  const vars = ctx.vars;
  const routeId = ctx.routeId === '' ? undefined : ctx.routeId;
  if (o.format !== null) {
    const e = buildFormat(ctx, o.format, o.maxReqBodyBytes) as Record<string, unknown>;
    if (routeId !== undefined) {
      e.route_id = routeId;
      e.service_id = ctx.serviceId;
    }
    if (!Array.isArray(e)) addLlmFields(ctx, e);
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
  if (o.includeRespBody) {
    const body = ctx.pluginData.get(o.respBodyKey);
    if (body instanceof BodyCollector) (entry.response as Record<string, unknown>).body = body.text();
  }
  if (wantReqBody(o, vars)) (entry.request as Record<string, unknown>).body = requestBody(ctx, o.maxReqBodyBytes);
  if (o.extra !== null) {
    const extra = buildFormat(ctx, o.extra, o.maxReqBodyBytes) as Record<string, unknown>;
    for (const k in extra) if (entry[k] === undefined) entry[k] = extra[k];
  }
  addLlmFields(ctx, entry);
  return entry;
}

/** Reads the request body before it is proxied (include_req_body): the proxy then sends the buffered copy. */
export async function captureRequestBody(ctx: HttpContext): Promise<void> {
  ctx.pluginData.set(REQ_BODY, await ctx.request.readBody());
}

/**
 * The access phase of a logger with include_req_body: reads the body, or with include_req_body_expr only when
 * the expression holds for the request (a request it excludes is streamed to the upstream unbuffered).
 */
export function requestBodyPhase(o: LogOptions): (ctx: HttpContext) => PhaseResult | Promise<PhaseResult> {
  const expr = o.reqBodyExpr;
  if (expr === null) return captureRequestBody;
  return (ctx) => (evalExpr(expr, ctx.vars) ? captureRequestBody(ctx) : undefined);
}

/** The first max bytes of one logger's response body (core.response.hold_body_chunk with a bound). */
class BodyCollector {
  readonly #chunks: Buffer[] = [];
  #bytes = 0;
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  add(chunk: Buffer): void {
    if (this.#bytes >= this.#max || chunk.length === 0) return;
    const part = chunk.length <= this.#max - this.#bytes ? chunk : chunk.subarray(0, this.#max - this.#bytes);
    this.#chunks.push(part);
    this.#bytes += part.length;
  }

  text(): string {
    return Buffer.concat(this.#chunks, this.#bytes).toString();
  }
}

/** Marks a request whose include_resp_body_expr was false, so later chunks skip the evaluation. */
const SKIP = false;

/**
 * The body_filter of a logger with include_resp_body: keeps up to max_resp_body_bytes of the response body in
 * this logger's own slot; include_resp_body_expr is evaluated at the first chunk (APISIX evaluates it once per
 * request in the body filter). Chunks pass on unchanged.
 */
export function responseBodyPhase(o: LogOptions): (ctx: HttpContext, chunk: Buffer) => Buffer {
  const key = o.respBodyKey;
  const max = o.maxRespBodyBytes;
  const expr = o.respBodyExpr;
  return (ctx, chunk) => {
    // hot path (every response chunk)
    const c = ctx.pluginData.get(key);
    if (c instanceof BodyCollector) c.add(chunk);
    else if (c === undefined) {
      if (expr !== null && !evalExpr(expr, ctx.vars)) ctx.pluginData.set(key, SKIP);
      else {
        const fresh = new BodyCollector(max);
        fresh.add(chunk);
        ctx.pluginData.set(key, fresh);
      }
    }
    return chunk;
  };
}

/**
 * max_pending_entries (APISIX batch-processor-manager.lua): entries pushed into the processors of one plugin
 * and not yet sent or dropped by them. Beyond the limit new entries are discarded and counted (the
 * processor's dropped-entries metric; an error log at most once a second). `pushed - processedSnapshot`
 * bounds the backlog from above, so the processors are only summed when that bound reaches the limit.
 */
class Backlog {
  limit = DEFAULT_MAX_PENDING_ENTRIES;
  pushed = 0;
  processedSnapshot = 0;
  /** Entries processed by processors no longer in `live`. */
  retired = 0;
  readonly live = new Set<BatchProcessor<unknown>>();
  discarded = 0;
  lastReport = 0;
  log: Logger | null = null;

  full(): boolean {
    // hot path (log phase)
    if (this.pushed - this.processedSnapshot < this.limit) return false;
    let processed = this.retired;
    for (const p of this.live) processed += p.stats.sent + p.stats.dropped;
    this.processedSnapshot = processed;
    return this.pushed - processed >= this.limit;
  }

  discard(name: string): void {
    countDropped(name, 1);
    this.discarded++;
    const now = Date.now();
    if (now - this.lastReport < 1000) return;
    this.log?.error(
      { pushed: this.pushed, processed: this.processedSnapshot, max_pending_entries: this.limit, discarded: this.discarded },
      'max pending entries limit exceeded, discarding entries',
    );
    this.lastReport = now;
    this.discarded = 0;
  }
}

const backlogs = new Map<string, Backlog>();

interface Shared {
  processor: BatchProcessor<unknown>;
  refs: number;
}
const processors = new Map<string, Shared>();

export interface ProcessorHandle<T> {
  readonly processor: BatchProcessor<T>;
  /** Pushes an entry unless the plugin's max_pending_entries backlog is full (then it is discarded and counted). */
  push(entry: T): void;
  release(): void;
}

/** The batch processor of one (plugin, scope, conf); shared by the instances of successive snapshots. */
export function acquireProcessor<T>(plugin: string, conf: JsonObject, env: PluginEnv, sink: BatchSink<T>): ProcessorHandle<T> {
  let backlog = backlogs.get(plugin);
  if (backlog === undefined) {
    backlog = new Backlog();
    backlogs.set(plugin, backlog);
  }
  // The newest snapshot's metadata rules: its chains are built with it.
  const limit = env.metadata?.max_pending_entries;
  backlog.limit = typeof limit === 'number' ? limit : DEFAULT_MAX_PENDING_ENTRIES;
  backlog.log = env.logger;
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
    backlog.live.add(s.processor);
  }
  s.refs++;
  const shared = s;
  const processor = shared.processor as BatchProcessor<T>;
  const b = backlog;
  let released = false;
  return {
    processor,
    push(entry) {
      // hot path (log phase)
      if (b.full()) {
        b.discard(processor.name);
        return;
      }
      b.pushed++;
      processor.push(entry);
    },
    release() {
      if (released) return;
      released = true;
      // The next snapshot's instance usually acquired it already; flush only when the last user goes.
      setImmediate(() => {
        if (--shared.refs > 0) return;
        processors.delete(key);
        void shared.processor.flush().then(() => {
          b.live.delete(shared.processor);
          b.retired += shared.processor.stats.sent + shared.processor.stats.dropped;
        });
      });
    },
  };
}

/** A batching logger: entry per request into the shared processor. */
export class BatchLogger implements PluginInstance {
  readonly #opts: LogOptions;
  readonly #handle: ProcessorHandle<Record<string, unknown>>;
  readonly #routeDefault: string | null;

  constructor(opts: LogOptions, handle: ProcessorHandle<Record<string, unknown>>, routeDefault: string | null) {
    this.#opts = opts;
    this.#handle = handle;
    this.#routeDefault = routeDefault;
    if (opts.includeReqBody) this.access = requestBodyPhase(opts);
    if (opts.includeRespBody) this.body_filter = responseBodyPhase(opts);
  }

  access?: (ctx: HttpContext) => PhaseResult | Promise<PhaseResult>;
  body_filter?: (ctx: HttpContext, chunk: Buffer) => Buffer;

  log(ctx: HttpContext): void {
    const e = logEntry(ctx, this.#opts);
    if (e.route_id === undefined && this.#routeDefault !== null) e.route_id = this.#routeDefault;
    this.#handle.push(e);
  }

  destroy(): void {
    this.#handle.release();
  }
}

/** APISIX sends one entry as an object, several as an array. */
export function encodeBatch(entries: readonly unknown[]): string {
  return JSON.stringify(entries.length === 1 ? entries[0] : entries);
}
