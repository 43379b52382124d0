// zipkin (APISIX priority 12011): B3 propagation and Zipkin v2 JSON spans, as apisix/plugins/zipkin.lua.
// rewrite: the context comes from the single `b3` header (removed before proxying; "0" = not sampled, "d" =
// debug, which sets x-b3-flags: 1; fewer than two fields answers 400) or from x-b3-traceid / x-b3-spanid /
// x-b3-parentspanid / x-b3-sampled (ids of the wrong length are ignored). x-b3-flags: 1 or sampled 1/true
// forces sampling, 0/false prevents it, otherwise sample_ratio decides. Spans (span_version 2): apisix.request
// (SERVER, child of the incoming span), apisix.proxy (until the response head) and apisix.response_span (until
// the log phase); span_version 1: apisix.rewrite, apisix.access, apisix.proxy and apisix.body_filter instead.
// access: the upstream gets x-b3-traceid / x-b3-spanid / x-b3-parentspanid / x-b3-sampled of the proxy span
// (of the request span when not sampled) and uberctx-* baggage. Sampled spans are POSTed as a JSON array to
// `endpoint` by a batch processor named zipkin_report (batch_max_size 1000, inactive_timeout 5 s, no retry).
import { randomBytes } from 'node:crypto';
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { acquireProcessor } from './log-common.ts';
import { SinkHttp } from './log-http.ts';
import { responseSource } from './response-source.ts';
import type { BatchProcessor } from '../../observability/batch-processor.ts';

const NAME = 'zipkin';
const KEY = 'zipkin:trace';

const schema: JsonObject = {
  type: 'object',
  properties: {
    endpoint: { type: 'string' },
    sample_ratio: { type: 'number', minimum: 0.00001, maximum: 1 },
    service_name: { type: 'string', default: 'APISIX' },
    server_addr: { type: 'string', pattern: '^[0-9]{1,3}.[0-9]{1,3}.[0-9]{1,3}.[0-9]{1,3}$' },
    span_version: { enum: [1, 2], default: 2 },
  },
  required: ['endpoint', 'sample_ratio'],
};

/** A Zipkin v2 span as APISIX's reporter writes it. */
export interface ZipkinSpan {
  traceId: string;
  name: string;
  parentId?: string;
  id: string;
  kind?: 'SERVER';
  timestamp: number;
  duration: number;
  localEndpoint: { serviceName: string; ipv4: string; port: number };
  remoteEndpoint: { ipv4: string; port: number } | null;
  tags: Record<string, string>;
}

interface OpenSpan {
  readonly name: string;
  readonly id: string;
  readonly parentId: string | undefined;
  readonly startUs: number;
}

interface Trace {
  readonly traceId: string;
  readonly sampled: boolean;
  readonly baggage: ReadonlyMap<string, string>;
  readonly request: OpenSpan;
  readonly startUs: number;
  proxy: OpenSpan | null;
  after: OpenSpan | null;
  /** span_version 1: where the rewrite span ended and the access span starts (µs). */
  rewriteEndUs: number;
}

const HEX = /^[0-9a-fA-F]+$/;
const validId = (v: string | undefined, ...lens: number[]) => v === undefined || (lens.includes(v.length) && HEX.test(v));

function header(ctx: HttpContext, name: string): string | undefined {
  const v = ctx.request.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

const nowUs = () => Date.now() * 1000;
const newId = () => randomBytes(8).toString('hex');

function child(name: string, parent: OpenSpan, startUs: number): OpenSpan {
  return { name, id: newId(), parentId: parent.id, startUs };
}

class Zipkin implements PluginInstance {
  readonly #ratio: number;
  readonly #service: string;
  readonly #serverAddr: string | undefined;
  readonly #v1: boolean;
  readonly #processor: BatchProcessor<ZipkinSpan>;
  readonly #release: () => void;

  constructor(conf: JsonObject, handle: { processor: BatchProcessor<ZipkinSpan>; release(): void }) {
    this.#ratio = conf.sample_ratio as number;
    this.#service = typeof conf.service_name === 'string' ? conf.service_name : 'APISIX';
    this.#serverAddr = typeof conf.server_addr === 'string' && conf.server_addr !== '' ? conf.server_addr : undefined;
    this.#v1 = conf.span_version === 1;
    this.#processor = handle.processor;
    this.#release = handle.release;
  }

  rewrite(ctx: HttpContext): PluginResponse | undefined {
    let ratio: number | undefined = header(ctx, 'x-b3-flags') === '1' ? 1 : undefined;
    let traceId: string | undefined;
    let spanId: string | undefined;
    let parentId: string | undefined;
    let sampled: string | undefined;
    const b3 = header(ctx, 'b3');
    if (b3 !== undefined) {
      ctx.request.setHeader('b3', null);
      if (b3 === '0') sampled = '0';
      else {
        const p = b3.split('-', 4);
        if (p.length < 2 || p[0] === '' || p[1] === '') return { status: 400 };
        [traceId, spanId, sampled, parentId] = p;
        if (sampled === 'd') {
          ctx.request.setHeader('x-b3-flags', '1');
          sampled = '1';
        }
      }
    } else {
      sampled = header(ctx, 'x-b3-sampled');
      traceId = header(ctx, 'x-b3-traceid');
      parentId = header(ctx, 'x-b3-parentspanid');
      spanId = header(ctx, 'x-b3-spanid');
    }
    // APISIX's extractor: an invalid id drops the whole incoming context.
    const valid = traceId !== undefined && validId(traceId, 16, 32) && validId(parentId, 16) && validId(spanId, 16);
    const baggage = new Map<string, string>();
    if (valid) {
      const headers = ctx.request.headers;
      for (const k in headers) {
        if (!k.startsWith('uberctx-')) continue;
        const v = header(ctx, k)!;
        try {
          baggage.set(k.slice(8), decodeURIComponent(v));
        } catch {
          baggage.set(k.slice(8), v);
        }
      }
    }
    if (sampled === '1' || sampled === 'true') ratio = 1;
    else if (sampled === '0' || sampled === 'false') ratio = 0;
    const sample = Math.random() < (ratio ?? this.#ratio);
    baggage.set('x-b3-sampled', sample ? '1' : '0');
    const startUs = Math.round(Date.now() * 1000 - Number(process.hrtime.bigint() - ctx.startNs) / 1000);
    const trace: Trace = {
      traceId: valid ? traceId!.toLowerCase() : randomBytes(16).toString('hex'),
      sampled: sample,
      baggage,
      request: { name: 'apisix.request', id: newId(), parentId: valid ? spanId?.toLowerCase() : undefined, startUs },
      startUs,
      proxy: null,
      after: null,
      rewriteEndUs: 0,
    };
    ctx.pluginData.set(KEY, trace);
    if (!sample) return undefined;
    if (this.#v1) {
      const end = nowUs();
      this.#report(ctx, trace, child('apisix.rewrite', trace.request, startUs), end);
      trace.rewriteEndUs = end;
    } else trace.proxy = child('apisix.proxy', trace.request, startUs);
    return undefined;
  }

  access(ctx: HttpContext): void {
    const trace = ctx.pluginData.get(KEY) as Trace | undefined;
    if (trace === undefined) return;
    if (trace.sampled && this.#v1) {
      const end = nowUs();
      this.#report(ctx, trace, child('apisix.access', trace.request, trace.rewriteEndUs), end);
      trace.proxy = child('apisix.proxy', trace.request, end);
    }
    const span = trace.sampled && trace.proxy !== null ? trace.proxy : trace.request;
    const req = ctx.request;
    req.setHeader('x-b3-traceid', trace.traceId);
    if (span.parentId !== undefined) req.setHeader('x-b3-parentspanid', span.parentId);
    req.setHeader('x-b3-spanid', span.id);
    for (const [k, v] of trace.baggage) {
      if (k === 'x-b3-sampled') req.setHeader('x-b3-sampled', v);
      else req.setHeader(`uberctx-${k}`, encodeURIComponent(v));
    }
  }

  header_filter(ctx: HttpContext): void {
    const trace = ctx.pluginData.get(KEY) as Trace | undefined;
    if (trace === undefined || !trace.sampled || trace.proxy === null) return;
    const end = nowUs();
    if (this.#v1) trace.after = child('apisix.body_filter', trace.proxy, end);
    else {
      this.#report(ctx, trace, trace.proxy, end);
      trace.proxy = null;
      trace.after = child('apisix.response_span', trace.request, end);
    }
  }

  log(ctx: HttpContext): void {
    const trace = ctx.pluginData.get(KEY) as Trace | undefined;
    if (trace === undefined || !trace.sampled) return;
    const end = nowUs();
    if (trace.after !== null) this.#report(ctx, trace, trace.after, end);
    if (this.#v1 && trace.proxy !== null) this.#report(ctx, trace, trace.proxy, end);
    const rq = ctx.request;
    this.#report(ctx, trace, trace.request, end, {
      component: 'apisix',
      'http.method': rq.method,
      'http.url': String(ctx.vars.get('request_uri') ?? rq.path),
      'http.status_code': String(ctx.response.status),
      'apisix.response_source': responseSource(ctx),
    });
  }

  #report(ctx: HttpContext, trace: Trace, s: OpenSpan, endUs: number, tags?: Record<string, string>): void {
    const span: ZipkinSpan = {
      traceId: trace.traceId,
      name: s.name,
      id: s.id,
      timestamp: s.startUs,
      duration: Math.max(0, Math.floor(endUs - s.startUs)),
      localEndpoint: { serviceName: this.#service, ipv4: this.#serverAddr ?? ctx.request.serverAddr, port: ctx.request.serverPort },
      remoteEndpoint: tags === undefined ? null : { ipv4: ctx.request.remoteAddr, port: ctx.request.remotePort },
      tags: tags ?? {},
    };
    if (s.parentId !== undefined) span.parentId = s.parentId;
    if (tags !== undefined) span.kind = 'SERVER';
    this.#processor.push(span);
  }

  destroy(): void {
    this.#release();
  }
}

/** A collector that never answers must not hold a batch slot: one deadline per POST, as the log sinks. */
const REPORT_TIMEOUT_MS = 10_000;

function sinkFor(endpoint: string): (spans: ZipkinSpan[]) => Promise<void> {
  const http = new SinkHttp({ sslVerify: true, timeoutMs: REPORT_TIMEOUT_MS });
  return async (spans) => {
    const res = await http.send('POST', endpoint, { 'content-type': 'application/json' }, JSON.stringify(spans));
    if (res.status < 200 || res.status >= 300) throw new Error(`failed: ${endpoint} ${res.status}`);
  };
}

export const zipkinPlugin: PluginDef = {
  name: NAME,
  version: '0.1',
  priority: 12011,
  schema,
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    const routeId = env.scopeKey.startsWith('route:') ? env.scopeKey.slice(6) : '';
    const batchConf: JsonObject = { ...conf, name: 'zipkin_report', route_id: routeId };
    return new Zipkin(conf, acquireProcessor<ZipkinSpan>(NAME, batchConf, env, sinkFor(String(conf.endpoint))));
  },
};

export default zipkinPlugin;
