// skywalking (APISIX priority 12010, run_policy prefer_route, not enabled by default): one SkyWalking v3 trace
// segment per sampled request, shaped as APISIX's skywalking.lua + skywalking-nginx-lua's tracer produce it, and
// reported over SkyWalking's HTTP JSON protocol by skywalking-reporter.ts.
// - Sampling: sample_ratio (route conf; 1 = every request). Unsampled requests are left untouched (an incoming
//   sw8 passes through).
// - rewrite: an incoming `sw8` header (1-TRACEID-SEGMENTID-SPANID-PARENT_SERVICE-PARENT_INSTANCE-
//   PARENT_ENDPOINT-ADDRESS, base64 fields) becomes the entry span's CrossProcess ref and gives the trace id; a
//   malformed one is ignored (a new trace, never an error). Without it the trace id is the `request-id` header
//   when present (tracer.lua's ngx.var.http_request_id), else the segment id (a UUID). `sw8-correlation`
//   (at most 3 base64 key:value pairs) is carried on.
// - The upstream gets a new sw8 naming this segment and the exit span (id 1). APISIX writes it in rewrite with
//   the placeholder peer "upstream service"; here rewrite does the same (so log-phase readers such as
//   skywalking-logger see this segment even for locally answered requests) and before_proxy rewrites it with
//   the picked node (ip:port), which is what SkyWalking's topology expects in networkAddressUsedAtPeer.
// - Spans (APISIX's shape): Entry span 0 (operation = the request path, tags http.method, http.params =
//   scheme://host + request_uri, http.status_code; isError from status 500) and Exit span 1 (child of 0, same
//   operation, peer, http.status_code of the upstream; isError when the upstream answered 5xx or failed), both
//   layer Http, component 6002 (APISIX). The exit span starts at before_proxy (at the request start when the
//   request never got there, as APISIX's does) and ends with the response, as APISIX ends it at the last body
//   chunk. Plugins see one upstream call per request here, so retries share the one exit span.
// Service, instance and OAP address come from config.yaml plugin_attr.skywalking (APISIX's attr schema).
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import { cloneJson } from '../../schema/clone.ts';
import { compileSchema, runSchema } from '../../schema/compile.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance } from '../plugin.ts';
import { SkyWalkingReporter, type SwRef, type SwSegment, type SwSpan } from './skywalking-reporter.ts';

const NAME = 'skywalking';
const KEY = 'skywalking:trace';
/** SkyWalking's component id for APISIX (skywalking.lua sets it on both spans). */
const COMPONENT_APISIX = 6002;
const PLACEHOLDER_PEER = 'upstream service';

const schema: JsonObject = {
  type: 'object',
  properties: {
    sample_ratio: { type: 'number', minimum: 0.00001, maximum: 1, default: 1 },
  },
};

export const attrSchema: JsonObject = {
  type: 'object',
  properties: {
    service_name: { type: 'string', description: 'service name for skywalking', default: 'APISIX' },
    service_instance_name: { type: 'string', description: 'User Service Instance Name', default: 'APISIX Instance Name' },
    endpoint_addr: { type: 'string', default: 'http://127.0.0.1:12800' },
    report_interval: { type: 'integer' },
  },
};

/** client.lua's backendTimerDelay when report_interval is not set. */
const DEFAULT_INTERVAL_S = 3;

/** A decoded sw8 header. */
export interface Sw8 {
  readonly traceId: string;
  readonly segmentId: string;
  readonly spanId: number;
  readonly parentService: string;
  readonly parentInstance: string;
  readonly parentEndpoint: string;
  readonly address: string;
}

const B64 = /^[A-Za-z0-9+/_]*={0,2}$/;
const SPAN_ID = /^(0|[1-9][0-9]{0,9})$/;

function b64(field: string): string | null {
  if (!B64.test(field)) return null;
  return Buffer.from(field, 'base64').toString('utf8');
}

/** Parses sw8 (8 dash-separated fields); null when malformed: a field count other than 8, bad base64 or span id. */
export function parseSw8(v: string | undefined): Sw8 | null {
  if (v === undefined) return null;
  const p = v.split('-');
  if (p.length !== 8 || !SPAN_ID.test(p[3]!)) return null;
  const spanId = Number(p[3]);
  if (spanId > 0x7fffffff) return null;
  const traceId = b64(p[1]!);
  const segmentId = b64(p[2]!);
  const parentService = b64(p[4]!);
  const parentInstance = b64(p[5]!);
  const parentEndpoint = b64(p[6]!);
  const address = b64(p[7]!);
  if (!traceId || !segmentId || parentService === null || parentInstance === null || parentEndpoint === null || address === null) return null;
  return { traceId, segmentId, spanId, parentService, parentInstance, parentEndpoint, address };
}

const enc = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** correlation_context.lua: at most 3 `base64(key):base64(value)` pairs; more than 3 means none. */
function carryCorrelation(v: string | undefined): string | null {
  if (v === undefined || v === '') return null;
  const pairs = v.split(',');
  if (pairs.length > 3) return null;
  let out = '';
  for (const pair of pairs) {
    const kv = pair.split(':');
    if (kv.length !== 2) continue;
    const k = b64(kv[0]!);
    const val = b64(kv[1]!);
    if (!k || !val || val.length > 128) continue;
    out += `${out === '' ? '' : ','}${enc(k)}:${enc(val)}`;
  }
  return out === '' ? null : out;
}

function header(ctx: HttpContext, name: string): string | undefined {
  const v = ctx.request.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

interface Trace {
  readonly traceId: string;
  readonly segmentId: string;
  readonly ref: Sw8 | null;
  readonly operation: string;
  readonly startMs: number;
  /** sw8 up to the peer field: only the peer changes between rewrite and before_proxy. */
  readonly sw8Prefix: string;
  readonly params: string;
  exitStartMs: number;
  peer: string;
}

interface Agent {
  readonly reporter: SkyWalkingReporter;
  readonly service: string;
  readonly instance: string;
  /** base64 of service and instance, computed once for every sw8 written. */
  readonly sw8Service: string;
  refs: number;
}

const agents = new Map<string, Agent>();

/** One reporter per plugin_attr content, shared by every route and snapshot. */
function acquireAgent(attr: JsonObject | undefined, log: Logger): { agent: Agent; key: string } | null {
  const info = attr === undefined ? {} : cloneJson(attr);
  const err = runSchema(compileSchema(attrSchema), info);
  if (err !== null) {
    log.error({ err }, 'failed to check the plugin_attr[skywalking]');
    return null;
  }
  const key = JSON.stringify(info);
  let a = agents.get(key);
  if (a === undefined) {
    const service = info.service_name as string;
    const instance = info.service_instance_name === '$hostname' ? os.hostname() : (info.service_instance_name as string);
    const interval = typeof info.report_interval === 'number' ? info.report_interval : DEFAULT_INTERVAL_S;
    const reporter = new SkyWalkingReporter({
      endpoint: (info.endpoint_addr as string).replace(/\/+$/, ''),
      service,
      instance,
      // A zero or negative interval would spin the timer: one second is the floor.
      intervalMs: Math.max(1, interval) * 1000,
      logger: log,
    });
    a = { reporter, service, instance, sw8Service: `${enc(service)}-${enc(instance)}`, refs: 0 };
    agents.set(key, a);
  }
  a.refs++;
  return { agent: a, key };
}

class SkyWalking implements PluginInstance {
  readonly #ratio: number;
  readonly #agent: Agent | null;
  readonly #key: string;
  readonly #log: Logger;
  #released = false;

  constructor(conf: JsonObject, attr: JsonObject | undefined, log: Logger) {
    this.#ratio = typeof conf.sample_ratio === 'number' ? conf.sample_ratio : 1;
    this.#log = log;
    const got = acquireAgent(attr, log);
    this.#agent = got?.agent ?? null;
    this.#key = got?.key ?? '';
  }

  rewrite(ctx: HttpContext): void {
    const agent = this.#agent;
    if (agent === null || (this.#ratio < 1 && Math.random() >= this.#ratio)) return;
    const startMs = Math.round(Date.now() - Number(process.hrtime.bigint() - ctx.startNs) / 1e6);
    const ref = parseSw8(header(ctx, 'sw8'));
    const segmentId = randomUUID();
    const traceId = ref?.traceId ?? (header(ctx, 'request-id') || segmentId);
    const operation = String(ctx.vars.get('uri') ?? ctx.request.path);
    const rq = ctx.request;
    const trace: Trace = {
      traceId,
      segmentId,
      ref,
      operation,
      startMs,
      sw8Prefix: `1-${enc(traceId)}-${enc(segmentId)}-1-${agent.sw8Service}-${enc(operation)}-`,
      params: `${rq.scheme}://${rq.host}${String(ctx.vars.get('request_uri') ?? rq.path)}`,
      exitStartMs: startMs,
      peer: PLACEHOLDER_PEER,
    };
    ctx.pluginData.set(KEY, trace);
    rq.setHeader('sw8', trace.sw8Prefix + enc(PLACEHOLDER_PEER));
    rq.setHeader('sw8-correlation', carryCorrelation(header(ctx, 'sw8-correlation')));
  }

  before_proxy(ctx: HttpContext): void {
    const trace = ctx.pluginData.get(KEY) as Trace | undefined;
    if (trace === undefined) return;
    trace.exitStartMs = Date.now();
    const addr = ctx.upstreamAddr;
    if (addr === undefined) return;
    trace.peer = addr;
    ctx.request.setHeader('sw8', trace.sw8Prefix + enc(addr));
  }

  log(ctx: HttpContext): void {
    const trace = ctx.pluginData.get(KEY) as Trace | undefined;
    const agent = this.#agent;
    if (trace === undefined || agent === null) return;
    const end = Date.now();
    const upStatus = ctx.upstreamStatus;
    const status = ctx.response.status;
    const exit: SwSpan = {
      spanId: 1,
      parentSpanId: 0,
      startTime: trace.exitStartMs,
      endTime: end,
      operationName: trace.operation,
      peer: ctx.upstreamAddr ?? trace.peer,
      spanType: 'Exit',
      spanLayer: 'Http',
      componentId: COMPONENT_APISIX,
      isError: upStatus !== undefined && upStatus >= 500,
      tags: upStatus === undefined ? [] : [{ key: 'http.status_code', value: String(upStatus) }],
    };
    const r = trace.ref;
    const refs: SwRef[] | undefined =
      r === null
        ? undefined
        : [
            {
              refType: 'CrossProcess',
              traceId: r.traceId,
              parentTraceSegmentId: r.segmentId,
              parentSpanId: r.spanId,
              parentService: r.parentService,
              parentServiceInstance: r.parentInstance,
              parentEndpoint: r.parentEndpoint,
              networkAddressUsedAtPeer: r.address,
            },
          ];
    const entry: SwSpan = {
      spanId: 0,
      parentSpanId: -1,
      startTime: trace.startMs,
      endTime: end,
      // JSON.stringify leaves out an undefined `refs`, as tracer.lua leaves out an empty one.
      refs,
      operationName: trace.operation,
      spanType: 'Entry',
      spanLayer: 'Http',
      componentId: COMPONENT_APISIX,
      isError: status >= 500,
      tags: [
        { key: 'http.method', value: ctx.request.method },
        { key: 'http.params', value: trace.params },
        { key: 'http.status_code', value: String(status) },
      ],
    };
    // tracer.lua's finishing order: the exit span, then the entry span.
    const seg: SwSegment = { traceId: trace.traceId, traceSegmentId: trace.segmentId, service: agent.service, serviceInstance: agent.instance, spans: [exit, entry] };
    agent.reporter.push(seg);
  }

  destroy(): void {
    const a = this.#agent;
    if (a === null || this.#released) return;
    this.#released = true;
    const key = this.#key;
    // The next snapshot's instance usually holds the agent already; flush only when the last user goes.
    setImmediate(() => {
      if (--a.refs > 0) return;
      agents.delete(key);
      a.reporter.close().catch((err: unknown) => this.#log.error({ err }, 'skywalking: final report failed'));
    });
  }
}

export const skywalkingPlugin: PluginDef = {
  name: NAME,
  version: '0.1',
  priority: 12010,
  schema,
  runPolicy: 'prefer_route',
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    return new SkyWalking(conf, env.attr, env.logger);
  },
};

export default skywalkingPlugin;
