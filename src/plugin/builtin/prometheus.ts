// prometheus (APISIX priority 500, log phase, run_policy prefer_route; stream log too): records per-request
// metrics into the process registry (src/observability/metrics.ts), served by the exporter on
// plugin_attr.prometheus.export_addr (127.0.0.1:9091) at export_uri, or on the data plane via public-api.
// Labels: route / service are ids, or names with `prefer_name` (falling back to ids); consumer is the consumer
// name; node the upstream IP; matched_uri / matched_host the route URI / host pattern the router matched;
// request_type / request_llm_model / llm_model (APISIX 3.14+: `traditional_http` and empty unless an AI
// plugin parsed the request, see ai/state.ts), response_source on http_status (response-source.ts); then the
// `metrics.<name>.extra_labels` of plugin_attr, read from variables. AI requests also feed the llm_* metrics
// as APISIX 3.18 does (latency total/ttft of served answers, prompt/completion token counters and
// distributions); llm_active_connections is kept by the AI plugins themselves around each provider call
// (ai/active.ts), as APISIX's ai-proxy does. Latency types: request (whole request), upstream (dispatch to
// response headers), apisix (request minus upstream). Bandwidth: ingress =
// request line + headers + body, egress = status line + headers + body (header sizes from parsed headers).
// gRPC: APISIX 3.x has no gRPC series (a gRPC call is one http_status{code="200"} whatever its outcome), so
// Switchyard adds its own family `<prefix>grpc_requests_total{route,grpc_status}` for gRPC answers that ended
// with a status ($grpc_status: the trailer or trailers-only head of an application/grpc answer, or the
// gateway's own gRPC answer), normalised to '0'..'16' (anything else is '2', UNKNOWN) so that an upstream
// cannot grow the series, and leaves APISIX's series and labels as they are.
// Cost: the labelled series of one (route, service, consumer, node, matched uri/host, extra values) tuple are
// looked up once and cached in the instance, so a request does one string concat, one map lookup and a few
// additions; bench/micro/prometheus.ts measures it.
import type { JsonObject } from '../../config/resources.ts';
import { metricsTextFromHere } from '../../observability/cluster-metrics.ts';
import { exporterSettings } from '../../observability/metrics-exporter.ts';
import { TEXT_CONTENT_TYPE } from '../../observability/registry.ts';
import { gatewayMetrics, metricsOptionsFromAttr, type ExtraLabel, type GatewayMetrics } from '../../observability/metrics.ts';
import type { CounterChild, HistogramChild } from '../../observability/registry.ts';
import type { HeaderMap, HttpContext, MutableVars, StreamContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { registerPublicApi } from './public-api.ts';
import { aiState } from './ai/state.ts';
import { responseSource, type ResponseSource } from './response-source.ts';
import { varToString } from '../template.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    prefer_name: { type: 'boolean', default: false },
  },
};

const SEP = '\u0001';
/** APISIX caps client-supplied model names before they become label values. */
const MAX_MODEL_LABEL_LEN = 128;
const SOURCES: readonly ResponseSource[] = ['upstream', 'nginx', 'apisix'];
/** Distinct label tuples cached per instance before the cache starts over (the registry keeps every series). */
const CACHE_LIMIT = 4096;

// hot path
function headerBytes(h: HeaderMap): number {
  let n = 0;
  for (const k in h) {
    const v = h[k];
    if (v === undefined) continue;
    if (typeof v === 'string') n += k.length + v.length + 4;
    else for (let i = 0; i < v.length; i++) n += k.length + v[i]!.length + 4;
  }
  return n + 2;
}

function labelOf(v: unknown): string {
  return v === undefined || v === null ? '' : varToString(v as string);
}

function modelLabel(v: unknown): string {
  const s = labelOf(v);
  return s.length > MAX_MODEL_LABEL_LEN ? s.slice(0, MAX_MODEL_LABEL_LEN) : s;
}

function num(v: unknown): number {
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) ? n : 0;
}

/** The llm_* series of one label tuple, made on the first AI request of the tuple. */
class LlmSeries {
  readonly #m: GatewayMetrics;
  readonly #labels: readonly string[];
  #total: HistogramChild | null = null;
  #ttft: HistogramChild | null = null;
  readonly prompt: CounterChild;
  readonly completion: CounterChild;
  readonly promptDist: HistogramChild;
  readonly completionDist: HistogramChild;
  constructor(m: GatewayMetrics, labels: readonly string[]) {
    this.#m = m;
    this.#labels = labels;
    this.prompt = m.llmPromptTokens.child(labels);
    this.completion = m.llmCompletionTokens.child(labels);
    this.promptDist = m.llmPromptTokensDist.child(labels);
    this.completionDist = m.llmCompletionTokensDist.child(labels);
  }
  // Latency series appear with their first observation, as APISIX's (failed-only tuples have none).
  get total(): HistogramChild {
    return (this.#total ??= this.#m.llmLatency.child(['total', ...this.#labels]));
  }
  get ttft(): HistogramChild {
    return (this.#ttft ??= this.#m.llmLatency.child(['ttft', ...this.#labels]));
  }
}

function extraValues(vars: MutableVars, extra: readonly ExtraLabel[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < extra.length; i++) out.push(labelOf(vars.get(extra[i]!.variable)));
  return out;
}

/** The series one label tuple writes to. */
class Series {
  readonly #m: GatewayMetrics;
  /** http_status label values with code left empty at index 0. */
  readonly #statusLabels: string[];
  readonly #status = new Map<number, CounterChild>();
  readonly request: HistogramChild;
  readonly upstream: HistogramChild;
  readonly apisix: HistogramChild;
  readonly ingress: CounterChild;
  readonly egress: CounterChild;

  /** route_id, service_id, consumer, node, request_type, request_llm_model, llm_model. */
  readonly #llmLabels: readonly string[];
  #llm: LlmSeries | null = null;

  constructor(m: GatewayMetrics, route: string, muri: string, mhost: string, service: string, consumer: string, node: string, ai: readonly string[], vars: MutableVars, routeId: string, serviceId: string) {
    this.#m = m;
    this.#statusLabels = ['', route, muri, mhost, service, consumer, node, ...ai, '', ...extraValues(vars, m.extra.status)];
    const lat = extraValues(vars, m.extra.latency);
    this.request = m.latency.child(['request', route, service, consumer, node, ...ai, ...lat]);
    this.upstream = m.latency.child(['upstream', route, service, consumer, node, ...ai, ...lat]);
    this.apisix = m.latency.child(['apisix', route, service, consumer, node, ...ai, ...lat]);
    const bw = extraValues(vars, m.extra.bandwidth);
    this.ingress = m.bandwidth.child(['ingress', route, service, consumer, node, ...ai, ...bw]);
    this.egress = m.bandwidth.child(['egress', route, service, consumer, node, ...ai, ...bw]);
    this.#llmLabels = [routeId, serviceId, consumer, node, ...ai];
  }

  status(code: number, source: ResponseSource): CounterChild {
    // hot path
    const key = code * 4 + SOURCES.indexOf(source);
    let c = this.#status.get(key);
    if (c === undefined) {
      this.#statusLabels[0] = String(code);
      this.#statusLabels[10] = source;
      c = this.#m.status.child(this.#statusLabels);
      this.#status.set(key, c);
    }
    return c;
  }

  get llm(): LlmSeries {
    return (this.#llm ??= new LlmSeries(this.#m, this.#llmLabels));
  }
}

/** The label values a plain HTTP request's series was last found for on one upstream node. */
interface NodeMemo {
  readonly route: string;
  readonly service: string;
  readonly consumer: string;
  readonly muri: string;
  readonly mhost: string;
  readonly series: Series;
}

class Prometheus implements PluginInstance {
  readonly #preferName: boolean;
  readonly #m: GatewayMetrics;
  readonly #extraVars: readonly string[];
  readonly #cache = new Map<string, Series>();
  /**
   * Plain HTTP requests (no AI labels, no extra label variables): the series last used per node. A route's
   * requests to a node carry the same label strings (route id, matched uri and host from the route, the node's
   * address) request after request, so comparing them finds the series without building and hashing the key.
   */
  readonly #byNode = new Map<string, NodeMemo>();
  readonly #stream = new Map<string, CounterChild>();
  readonly #grpc = new Map<string, CounterChild>();

  constructor(conf: JsonObject, m: GatewayMetrics) {
    this.#preferName = conf.prefer_name === true;
    this.#m = m;
    this.#extraVars = [...m.extra.status, ...m.extra.latency, ...m.extra.bandwidth].map((e) => e.variable);
  }

  // hot path
  log(ctx: HttpContext): void {
    const vars = ctx.vars;
    const route = this.#preferName ? labelOf(vars.get('route_name')) || ctx.routeId : ctx.routeId;
    const serviceId = ctx.serviceId ?? '';
    const service = this.#preferName && serviceId !== '' ? labelOf(vars.get('service_name')) || serviceId : serviceId;
    const consumer = ctx.consumer?.username ?? '';
    const node = labelOf(vars.get('balancer_ip'));
    const muri = labelOf(vars.get('matched_uri'));
    const mhost = labelOf(vars.get('matched_host'));
    const ai = aiState(ctx);
    let rtype = 'traditional_http';
    let rmodel = '';
    let model = '';
    if (ai !== undefined) {
      rtype = labelOf(vars.get('request_type')) || (ai.stream ? 'ai_stream' : 'ai_chat');
      rmodel = modelLabel(vars.get('request_llm_model'));
      model = modelLabel(vars.get('llm_model'));
    }
    const extra = this.#extraVars;
    const plain = ai === undefined && extra.length === 0;
    const memo = plain ? this.#byNode.get(node) : undefined;
    let s: Series | undefined;
    if (memo !== undefined && memo.route === route && memo.muri === muri && memo.mhost === mhost && memo.service === service && memo.consumer === consumer) {
      s = memo.series;
    } else {
      let key = route + SEP + service + SEP + consumer + SEP + node + SEP + muri + SEP + mhost + SEP + rtype + SEP + rmodel + SEP + model;
      for (let i = 0; i < extra.length; i++) key += SEP + labelOf(vars.get(extra[i]!));
      s = this.#cache.get(key);
      if (s === undefined) {
        if (this.#cache.size >= CACHE_LIMIT) {
          this.#cache.clear();
          this.#byNode.clear();
        }
        s = new Series(this.#m, route, muri, mhost, service, consumer, node, [rtype, rmodel, model], vars, ctx.routeId, serviceId);
        this.#cache.set(key, s);
      }
      if (plain) {
        if (this.#byNode.size >= CACHE_LIMIT) this.#byNode.clear();
        this.#byNode.set(node, { route, service, consumer, muri, mhost, series: s });
      }
    }
    const status = ctx.response.status;
    s.status(status, responseSource(ctx)).inc();
    if (ai !== undefined) this.#llm(ctx, s.llm, rtype, status);
    const totalMs = Number(process.hrtime.bigint() - ctx.startNs) / 1e6;
    s.request.observe(totalMs);
    const up = ctx.upstreamLatencyMs;
    if (up !== undefined) {
      s.upstream.observe(up);
      s.apisix.observe(totalMs > up ? totalMs - up : 0);
    } else s.apisix.observe(totalMs);
    const req = ctx.request;
    const reqBody = Number(req.headers['content-length'] ?? 0) || 0;
    s.ingress.inc(req.method.length + req.path.length + req.query.length + 12 + headerBytes(req.headers) + reqBody);
    s.egress.inc(17 + headerBytes(ctx.response.headers) + (ctx.bytesSent ?? 0));
    const grpcStatus = ctx.grpcStatus;
    if (grpcStatus !== undefined) this.#grpcSeries(route, grpcStatus).inc();
  }

  #grpcSeries(route: string, status: string): CounterChild {
    const key = route + SEP + status;
    let c = this.#grpc.get(key);
    if (c === undefined) {
      if (this.#grpc.size >= CACHE_LIMIT) this.#grpc.clear();
      c = this.#m.grpcRequests.child([route, status]);
      this.#grpc.set(key, c);
    }
    return c;
  }

  #llm(ctx: HttpContext, l: LlmSeries, rtype: string, status: number): void {
    const vars = ctx.vars;
    if (rtype !== 'ai_chat' && rtype !== 'ai_stream') return;
    const ttft = num(vars.get('llm_time_to_first_token'));
    // Error answers (429/5xx) carry a ttft too; llm_latency measures served answers only (APISIX 3.18).
    if (ttft !== 0 && status < 400) {
      const total = vars.get('apisix_upstream_response_time');
      l.total.observe(total === undefined ? ttft : num(total));
      if (rtype === 'ai_stream') l.ttft.observe(ttft);
    }
    const prompt = num(vars.get('llm_prompt_tokens'));
    const completion = num(vars.get('llm_completion_tokens'));
    l.prompt.inc(prompt);
    l.promptDist.observe(prompt);
    l.completion.inc(completion);
    l.completionDist.observe(completion);
  }

  streamLog(ctx: StreamContext): void {
    const route = this.#preferName ? labelOf(ctx.vars.get('route_name')) || ctx.routeId : ctx.routeId;
    let c = this.#stream.get(route);
    if (c === undefined) {
      c = this.#m.streamConnections.child([route]);
      this.#stream.set(route, c);
    }
    c.inc();
  }
}

async function serveMetrics(): Promise<PluginResponse> {
  return { status: 200, body: await metricsTextFromHere(), headers: { 'content-type': TEXT_CONTENT_TYPE } };
}

// APISIX lists the export URI among the plugin APIs only when the export server is off.
registerPublicApi((method, uri) => {
  const s = exporterSettings();
  return !s.enabled && method === 'GET' && uri === s.path ? serveMetrics : null;
});

export const prometheusPlugin: PluginDef = {
  name: 'prometheus',
  version: '0.2',
  priority: 500,
  schema,
  runPolicy: 'prefer_route',
  subsystems: ['http', 'stream'],
  status: 'stable',
  create(conf, env) {
    return new Prometheus(conf, gatewayMetrics(metricsOptionsFromAttr(env.attr)));
  },
};

export default prometheusPlugin;
