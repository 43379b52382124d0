// opentelemetry (APISIX priority 12009, not enabled by default): one SERVER span per request, exported as
// OTLP/HTTP protobuf (src/observability/otlp.ts) to plugin_metadata.collector. Without plugin_metadata the
// plugin does nothing, as APISIX. rewrite: the parent comes from an incoming W3C `traceparent` (+ tracestate);
// the sampler decides (always_on | always_off | trace_id_ratio on the first 4 bytes of the trace id |
// parent_base with a root sampler); the span's own traceparent goes to the upstream whether sampled or not.
// log: response source, status (ERROR from 500 up), additional_attributes (variables) and
// additional_header_prefix_attributes (headers, `prefix*` allowed), then the span is queued for export.
// Attributes, span name, resource (hostname, service.name, metadata.resource) and the instrumentation scope
// name `opentelemetry-lua` are APISIX's, so collectors and dashboards see what they see from APISIX.
// One exporter and batch span processor per metadata content, shared by every route and snapshot.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { JsonObject } from '../../config/resources.ts';
import { VERSION } from '../../version.ts';
import {
  BatchSpanProcessor,
  batchSpanOptions,
  encodeExportRequest,
  OtlpExporter,
  SPAN_KIND_SERVER,
  STATUS_ERROR,
  type Attribute,
  type FinishedSpan,
} from '../../observability/otlp.ts';
import type { Logger } from '../../observability/logger.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance } from '../plugin.ts';
import { responseSource } from './response-source.ts';

const NAME = 'opentelemetry';
const SCOPE = { name: 'opentelemetry-lua', version: '' } as const;
const HOSTNAME = os.hostname();
const SPAN_KEY = 'opentelemetry:span';

const scalar = { oneOf: [{ type: 'boolean' }, { type: 'number' }, { type: 'string' }] };

const metadataSchema: JsonObject = {
  type: 'object',
  properties: {
    trace_id_source: { type: 'string', enum: ['x-request-id', 'random'], default: 'random' },
    resource: { type: 'object', additionalProperties: scalar },
    collector: {
      type: 'object',
      properties: {
        address: { type: 'string', default: '127.0.0.1:4318' },
        request_timeout: { type: 'integer', default: 3 },
        request_headers: { type: 'object', additionalProperties: scalar },
      },
      default: { address: '127.0.0.1:4318', request_timeout: 3 },
    },
    batch_span_processor: {
      type: 'object',
      properties: {
        drop_on_queue_full: { type: 'boolean' },
        max_queue_size: { type: 'integer' },
        batch_timeout: { type: 'number' },
        inactive_timeout: { type: 'number' },
        max_export_batch_size: { type: 'integer' },
      },
      default: {},
    },
    set_ngx_var: { type: 'boolean', default: false },
  },
};

const samplerName = { type: 'string', enum: ['always_on', 'always_off', 'trace_id_ratio', 'parent_base'], default: 'always_off' };
const schema: JsonObject = {
  type: 'object',
  properties: {
    sampler: {
      type: 'object',
      properties: {
        name: samplerName,
        options: {
          type: 'object',
          properties: {
            fraction: { type: 'number', default: 0 },
            root: {
              type: 'object',
              properties: {
                name: { type: 'string', enum: ['always_on', 'always_off', 'trace_id_ratio'], default: 'always_off' },
                options: { type: 'object', properties: { fraction: { type: 'number', default: 0 } }, default: { fraction: 0 } },
              },
              default: { name: 'always_off', options: { fraction: 0 } },
            },
          },
          default: { fraction: 0, root: { name: 'always_off' } },
        },
      },
      default: { name: 'always_off', options: { fraction: 0, root: { name: 'always_off' } } },
    },
    additional_attributes: { type: 'array', items: { type: 'string', minLength: 1 } },
    additional_header_prefix_attributes: { type: 'array', items: { type: 'string', minLength: 1 } },
  },
};

interface Parent {
  readonly traceId: string;
  readonly spanId: string;
  readonly flags: number;
  readonly traceState: string;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO32 = '0'.repeat(32);
const ZERO16 = '0'.repeat(16);

function header(ctx: HttpContext, name: string): string | undefined {
  const v = ctx.request.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** opentelemetry-lua's traceparent parser (version 00 has exactly 4 fields; flags above 2 are refused). */
export function parseTraceparent(tp: string | undefined, ts: string | undefined): Parent | null {
  if (tp === undefined || tp === '') return null;
  const p = tp.trim().split('-');
  if (p.length < 4 || p[0]!.length !== 2) return null;
  const version = Number.parseInt(p[0]!, 16);
  if (Number.isNaN(version) || version > 254 || (version === 0 && p.length !== 4)) return null;
  const [, traceId, spanId, fl] = p as [string, string, string, string];
  if (!HEX32.test(traceId) || traceId === ZERO32 || !HEX16.test(spanId) || spanId === ZERO16) return null;
  if (fl.length !== 2) return null;
  const flags = Number.parseInt(fl, 16);
  if (Number.isNaN(flags) || flags > 2) return null;
  return { traceId, spanId, flags, traceState: ts?.trim() ?? '' };
}

type Sampler = (traceId: string, parent: Parent | null) => boolean;

function ratioSampler(fraction: number): Sampler {
  if (fraction >= 1) return () => true;
  const bound = Math.max(0, fraction) * 0xffffffff;
  return (traceId) => Number.parseInt(traceId.slice(0, 8), 16) < bound;
}

function simpleSampler(name: string, fraction: number): Sampler {
  if (name === 'always_on') return () => true;
  if (name === 'trace_id_ratio') return ratioSampler(fraction);
  return () => false;
}

function samplerOf(conf: JsonObject): Sampler {
  const s = (conf.sampler ?? {}) as JsonObject;
  const name = typeof s.name === 'string' ? s.name : 'always_off';
  const opts = (s.options ?? {}) as JsonObject;
  if (name !== 'parent_base') return simpleSampler(name, typeof opts.fraction === 'number' ? opts.fraction : 0);
  const root = (opts.root ?? {}) as JsonObject;
  const rootFraction = ((root.options ?? {}) as JsonObject).fraction;
  const rootSampler = simpleSampler(typeof root.name === 'string' ? root.name : 'always_off', typeof rootFraction === 'number' ? rootFraction : 0);
  return (traceId, parent) => (parent !== null ? (parent.flags & 1) === 1 : rootSampler(traceId, null));
}

function resourceOf(meta: JsonObject): Attribute[] {
  // The SDK's own attributes win over metadata.resource, as opentelemetry-lua's resource merge does.
  const sdk: Attribute[] = [
    { key: 'telemetry.sdk.language', value: { s: 'nodejs' } },
    { key: 'telemetry.sdk.name', value: { s: 'switchyard' } },
    { key: 'telemetry.sdk.version', value: { s: VERSION } },
  ];
  const own: Attribute[] = [{ key: 'hostname', value: { s: HOSTNAME } }];
  const res = meta.resource as Record<string, unknown> | undefined;
  if (res !== undefined && res !== null) {
    if (res['service.name'] === undefined) own.push({ key: 'service.name', value: { s: 'APISIX' } });
    for (const [k, v] of Object.entries(res)) {
      if (typeof v === 'string') own.push({ key: k, value: { s: v } });
      else if (typeof v === 'number') own.push({ key: k, value: { d: v } });
      else if (typeof v === 'boolean') own.push({ key: k, value: { b: v } });
    }
  }
  const taken = new Set(sdk.map((a) => a.key));
  return [...sdk, ...own.filter((a) => !taken.has(a.key))];
}

interface Tracer {
  readonly processor: BatchSpanProcessor;
  readonly xRequestId: boolean;
  readonly setVars: boolean;
  refs: number;
}

const tracers = new Map<string, Tracer>();

function acquireTracer(meta: JsonObject, log: Logger): { tracer: Tracer; key: string } {
  const key = JSON.stringify(meta);
  let t = tracers.get(key);
  if (t === undefined) {
    const collector = (meta.collector ?? {}) as JsonObject;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries((collector.request_headers ?? {}) as Record<string, unknown>)) headers[k.toLowerCase()] = String(v);
    const exporter = new OtlpExporter({
      address: typeof collector.address === 'string' ? collector.address : '127.0.0.1:4318',
      requestTimeout: typeof collector.request_timeout === 'number' ? collector.request_timeout : 3,
      headers,
    });
    const resource = resourceOf(meta);
    const processor = new BatchSpanProcessor(
      batchSpanOptions(meta.batch_span_processor as Record<string, unknown> | undefined),
      (spans) => exporter.export(encodeExportRequest(resource, SCOPE, spans)),
      log,
    );
    t = { processor, xRequestId: meta.trace_id_source === 'x-request-id', setVars: meta.set_ngx_var === true, refs: 0 };
    tracers.set(key, t);
  }
  t.refs++;
  return { tracer: t, key };
}

interface LiveSpan {
  readonly traceId: string;
  readonly spanId: Buffer;
  readonly parent: Parent | null;
  readonly flags: number;
  readonly name: string;
  readonly startNs: bigint;
  readonly attributes: Attribute[];
}

const NS_PER_MS = 1_000_000n;

function wallStartNs(ctx: HttpContext): bigint {
  // The request's start on the wall clock: now minus the monotonic time elapsed since startNs.
  return BigInt(Date.now()) * NS_PER_MS - (process.hrtime.bigint() - ctx.startNs);
}

function str(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  return Array.isArray(v) ? v.join(', ') : String(v);
}

class OpenTelemetry implements PluginInstance {
  readonly #tracer: Tracer | null;
  readonly #key: string;
  readonly #sample: Sampler;
  readonly #extraVars: readonly string[];
  readonly #extraHeaders: readonly string[];
  readonly #log: Logger;
  #released = false;

  constructor(conf: JsonObject, meta: JsonObject | undefined, log: Logger) {
    this.#log = log;
    this.#sample = samplerOf(conf);
    this.#extraVars = (conf.additional_attributes as string[] | undefined) ?? [];
    this.#extraHeaders = ((conf.additional_header_prefix_attributes as string[] | undefined) ?? []).map((h) => h.toLowerCase());
    if (meta === undefined) {
      log.warn('plugin_metadata is required for opentelemetry plugin to working properly');
      this.#tracer = null;
      this.#key = '';
    } else ({ tracer: this.#tracer, key: this.#key } = acquireTracer(meta, log));
  }

  rewrite(ctx: HttpContext): void {
    const tracer = this.#tracer;
    if (tracer === null) return;
    const parent = parseTraceparent(header(ctx, 'traceparent'), header(ctx, 'tracestate'));
    let traceId = parent?.traceId;
    if (traceId === undefined && tracer.xRequestId) {
      const rid = header(ctx, 'x-request-id')?.toLowerCase();
      if (rid !== undefined && HEX32.test(rid) && rid !== ZERO32) traceId = rid;
    }
    traceId ??= randomBytes(16).toString('hex');
    const spanId = randomBytes(8);
    const sampled = this.#sample(traceId, parent);
    const flags = sampled ? (parent?.flags ?? 0) | 1 : 0;
    const traceparent = `00-${traceId}-${spanId.toString('hex')}-${flags.toString(16).padStart(2, '0')}`;
    ctx.request.setHeader('traceparent', traceparent);
    if (parent !== null && parent.traceState !== '') ctx.request.setHeader('tracestate', parent.traceState);
    if (tracer.setVars) {
      ctx.vars.set('opentelemetry_context_traceparent', traceparent);
      ctx.vars.set('opentelemetry_trace_id', traceId);
      ctx.vars.set('opentelemetry_span_id', spanId.toString('hex'));
    }
    if (!sampled) return;
    const vars = ctx.vars;
    const method = ctx.request.method;
    const ua = str(vars.get('http_user_agent'));
    const attributes: Attribute[] = [
      { key: 'net.host.name', value: { s: ctx.request.host } },
      { key: 'http.method', value: { s: method } },
      { key: 'http.scheme', value: { s: ctx.request.scheme } },
      { key: 'http.target', value: { s: str(vars.get('request_uri')) } },
      { key: 'http.user_agent', value: { s: ua } },
      { key: 'http.request.method', value: { s: method } },
      { key: 'url.scheme', value: { s: ctx.request.scheme } },
      { key: 'url.path', value: { s: str(vars.get('uri')) } },
      { key: 'user_agent.original', value: { s: ua } },
    ];
    let name = method;
    if (ctx.routeId !== '') {
      const path = str(vars.get('matched_uri')) ?? '';
      attributes.push(
        { key: 'apisix.route_id', value: { s: ctx.routeId } },
        { key: 'apisix.route_name', value: { s: str(vars.get('route_name')) } },
        { key: 'http.route', value: { s: path } },
      );
      name = `${method} ${path}`;
    }
    if (ctx.serviceId !== undefined) {
      attributes.push({ key: 'apisix.service_id', value: { s: ctx.serviceId } }, { key: 'apisix.service_name', value: { s: str(vars.get('service_name')) } });
    }
    const span: LiveSpan = { traceId, spanId, parent, flags, name, startNs: wallStartNs(ctx), attributes };
    ctx.pluginData.set(SPAN_KEY, span);
  }

  log(ctx: HttpContext): void {
    const tracer = this.#tracer;
    const live = ctx.pluginData.get(SPAN_KEY) as LiveSpan | undefined;
    if (tracer === null || live === undefined) return;
    const status = ctx.response.status;
    const source = responseSource(ctx);
    const attributes = live.attributes;
    attributes.push(
      { key: 'apisix.response_source', value: { s: source } },
      { key: 'http.status_code', value: { i: status } },
      { key: 'http.response.status_code', value: { i: status } },
    );
    const vars = ctx.vars;
    for (const k of this.#extraVars) {
      const v = str(vars.get(k));
      if (v !== undefined) attributes.push({ key: k, value: { s: v } });
    }
    const headers = ctx.request.headers;
    for (const k of this.#extraHeaders) {
      if (k.length >= 2 && k.endsWith('*')) {
        const prefix = k.slice(0, -1);
        for (const h in headers) {
          const v = str(headers[h]);
          if (h.startsWith(prefix) && v !== undefined) attributes.push({ key: h, value: { s: v } });
        }
      } else {
        const v = str(headers[k]);
        if (v !== undefined) attributes.push({ key: k, value: { s: v } });
      }
    }
    const parent = live.parent;
    const span: FinishedSpan = {
      traceId: Buffer.from(live.traceId, 'hex'),
      spanId: live.spanId,
      parentSpanId: parent === null ? null : Buffer.from(parent.spanId, 'hex'),
      traceState: parent?.traceState ?? '',
      traceFlags: live.flags,
      parentRemote: parent !== null,
      name: live.name,
      kind: SPAN_KIND_SERVER,
      startNs: live.startNs,
      endNs: BigInt(Date.now()) * NS_PER_MS,
      attributes,
      status: status >= 500 ? { code: STATUS_ERROR, message: `${source} error: ${status}` } : null,
    };
    tracer.processor.onEnd(span);
  }

  destroy(): void {
    const t = this.#tracer;
    if (t === null || this.#released) return;
    this.#released = true;
    const key = this.#key;
    // The next snapshot's instance usually holds the tracer already; flush only when the last user goes.
    setImmediate(() => {
      if (--t.refs > 0) return;
      tracers.delete(key);
      t.processor.close().catch((err: unknown) => this.#log.error({ err }, 'opentelemetry flush failed'));
    });
  }
}

export const opentelemetryPlugin: PluginDef = {
  name: NAME,
  version: '0.1',
  priority: 12009,
  schema,
  metadataSchema,
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    return new OpenTelemetry(conf, env.metadata, env.logger);
  },
};

export default opentelemetryPlugin;
