// The process metrics with APISIX 3.x's Prometheus exporter names, types and labels (prefix `apisix_` unless
// plugin_attr.prometheus.metric_prefix says otherwise):
//   http_status{code,route,matched_uri,matched_host,service,consumer,node,<ai>,response_source,<extra>}  counter
//   http_latency{type=request|upstream|apisix,route,service,consumer,node,<ai>,<extra>}  histogram, ms
//   bandwidth{type=ingress|egress,route,service,consumer,node,<ai>,<extra>}              counter, bytes
//     (<ai> = request_type, request_llm_model, llm_model as APISIX 3.14+; all three from the prometheus plugin)
//   llm_latency{type=total|ttft,<llm>}, llm_prompt_tokens{<llm>}, llm_completion_tokens{<llm>},
//   llm_prompt_tokens_dist / llm_completion_tokens_dist{<llm>} (token buckets), llm_active_connections{route,
//     route_id,matched_uri,matched_host,service,service_id,consumer,node,<ai>}   (prometheus plugin, AI routes;
//     <llm> = route_id, service_id, consumer, node, <ai>; the active gauge is kept by the AI plugins per
//     provider call, ai/active.ts)
//   batch_process_entries{name,route_id,server_addr}, batch_process_dropped_entries_total{name}  (log sinks and
//     span exporters; the dropped counter is Switchyard's, APISIX only logs the drop)
//   stream_connection_total{route}                                                  counter (stream plugin)
//   dubbo_calls_total{route,service,method,status}, dubbo_calls_latency_seconds{route,service,method}
//     counter and histogram (seconds, 1 ms to 1 s as APISIX's xRPC redis_commands_latency_seconds): every call
//     through an L4 Dubbo stream route, recorded by the proxy's session through DubboSeriesCache once these
//     metrics exist (nothing per call before), named as APISIX names xRPC protocol metrics
//     (<protocol>_<metric>, apisix/stream/xrpc/metrics.lua)
//   grpc_requests_total{route,grpc_status}   counter (Switchyard; prometheus plugin): gRPC answers by final
//     status, '0'..'16' ($grpc_status, src/pipeline/grpc.ts grpcStatusText)
//   http_requests_total, nginx_http_current_connections{state}                      gauges (http-stats.ts)
//   etcd_reachable, etcd_modify_indexes{key}                                        gauges (etcd stores)
//   upstream_status{name,ip,port}                                                   gauge (health checkers)
//   node_info{hostname,version}, shared_dict_capacity_bytes / shared_dict_free_space_bytes{name}, and
//   nginx_metric_errors_total (collector failures).
// nginx shared dicts do not exist here; the shared_dict pair reports V8's heap spaces (name `v8:<space>`),
// the memory that plays their role, so the dashboard's "free space" panel shows real headroom.
// In a cluster each worker snapshots its registry on the primary's request (cluster-metrics.ts).
import os from 'node:os';
import v8 from 'node:v8';
import { VERSION } from '../version.ts';
import { httpStats } from './http-stats.ts';
import { Registry, type Counter, type CounterChild, type Gauge, type Histogram, type HistogramChild } from './registry.ts';
import { etcdSources, healthSources } from './sources.ts';
import { batchSources, droppedEntries } from './batch-processor.ts';

/** APISIX's default latency buckets (milliseconds). */
export const DEFAULT_BUCKETS: readonly number[] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000];

/** APISIX's buckets of the xRPC latency histograms (seconds). */
export const XRPC_LATENCY_BUCKETS: readonly number[] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1];

/** APISIX's buckets of the LLM token histograms. */
export const DEFAULT_TOKEN_BUCKETS: readonly number[] = [1, 10, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 1000000];

/** Labels APISIX 3.14+ adds after `node` on the request metrics. */
export const AI_LABELS = ['request_type', 'request_llm_model', 'llm_model'] as const;
const LLM_LABELS = ['route_id', 'service_id', 'consumer', 'node', ...AI_LABELS];

export const ETCD_KEYS = ['routes', 'services', 'ssls', 'consumers', 'global_rules', 'upstreams', 'stream_routes', 'protos'] as const;

/** One `metrics.<name>.extra_labels` entry: label name and the variable (without `$`) giving its value. */
export interface ExtraLabel {
  readonly name: string;
  readonly variable: string;
}

export interface MetricsOptions {
  /** Metric name prefix (APISIX `metric_prefix`, default `apisix_`). */
  readonly prefix?: string;
  /** Latency histogram buckets in ms (APISIX `default_buckets`). */
  readonly buckets?: readonly number[];
  /** llm_latency buckets (APISIX `llm_latency_buckets`), token histogram buckets. */
  readonly llmLatencyBuckets?: readonly number[];
  readonly promptTokenBuckets?: readonly number[];
  readonly completionTokenBuckets?: readonly number[];
  readonly extraLabels?: {
    readonly http_status?: readonly ExtraLabel[];
    readonly http_latency?: readonly ExtraLabel[];
    readonly bandwidth?: readonly ExtraLabel[];
  };
}

function extraOf(metrics: unknown, name: string): ExtraLabel[] {
  const m = (metrics as Record<string, { extra_labels?: unknown }> | undefined)?.[name];
  if (!Array.isArray(m?.extra_labels)) return [];
  const out: ExtraLabel[] = [];
  for (const kv of m.extra_labels as unknown[]) {
    if (kv === null || typeof kv !== 'object') continue;
    for (const [k, v] of Object.entries(kv)) if (typeof v === 'string') out.push({ name: k, variable: v.startsWith('$') ? v.slice(1) : v });
  }
  return out;
}

/** default_buckets: the numbers of the list, or undefined for the defaults. */
function bucketsOf(v: unknown): number[] | undefined {
  const b = Array.isArray(v) ? (v as unknown[]).filter((x): x is number => typeof x === 'number') : undefined;
  return b !== undefined && b.length > 0 ? b : undefined;
}

/** Reads plugin_attr.prometheus (APISIX names). */
export function metricsOptionsFromAttr(attr: Record<string, unknown> | undefined): MetricsOptions {
  return {
    prefix: typeof attr?.metric_prefix === 'string' ? attr.metric_prefix : undefined,
    buckets: bucketsOf(attr?.default_buckets),
    llmLatencyBuckets: bucketsOf(attr?.llm_latency_buckets),
    promptTokenBuckets: bucketsOf(attr?.llm_prompt_tokens_buckets),
    completionTokenBuckets: bucketsOf(attr?.llm_completion_tokens_buckets),
    extraLabels: {
      http_status: extraOf(attr?.metrics, 'http_status'),
      http_latency: extraOf(attr?.metrics, 'http_latency'),
      bandwidth: extraOf(attr?.metrics, 'bandwidth'),
    },
  };
}

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly optionsKey: string;
  readonly status: Counter;
  readonly latency: Histogram;
  readonly bandwidth: Counter;
  readonly streamConnections: Counter;
  readonly dubboCalls: Counter;
  readonly dubboLatency: Histogram;
  readonly grpcRequests: Counter;
  readonly llmLatency: Histogram;
  readonly llmPromptTokens: Counter;
  readonly llmCompletionTokens: Counter;
  readonly llmPromptTokensDist: Histogram;
  readonly llmCompletionTokensDist: Histogram;
  readonly llmActiveConnections: Gauge;
  readonly extra: { readonly status: readonly ExtraLabel[]; readonly latency: readonly ExtraLabel[]; readonly bandwidth: readonly ExtraLabel[] };

  constructor(opts: MetricsOptions = {}) {
    this.optionsKey = JSON.stringify(opts);
    const p = opts.prefix ?? 'apisix_';
    const r = this.registry;
    this.extra = {
      status: opts.extraLabels?.http_status ?? [],
      latency: opts.extraLabels?.http_latency ?? [],
      bandwidth: opts.extraLabels?.bandwidth ?? [],
    };
    const names = (l: readonly ExtraLabel[]) => l.map((e) => e.name);
    const connections = r.gauge(`${p}nginx_http_current_connections`, 'Number of HTTP connections', ['state']);
    const requests = r.gauge(`${p}http_requests_total`, 'The total number of client requests since APISIX started');
    const reachable = r.gauge(`${p}etcd_reachable`, 'Config server etcd reachable from APISIX, 0 is unreachable', [], 'max');
    const nodeInfo = r.gauge(`${p}node_info`, 'Info of APISIX node', ['hostname', 'version'], 'max');
    const indexes = r.gauge(`${p}etcd_modify_indexes`, 'Etcd modify index for APISIX keys', ['key'], 'max');
    const dictCap = r.gauge(`${p}shared_dict_capacity_bytes`, 'The capacity of each nginx shared DICT since APISIX start', ['name']);
    const dictFree = r.gauge(`${p}shared_dict_free_space_bytes`, 'The free space of each nginx shared DICT since APISIX start', ['name']);
    const upstreamStatus = r.gauge(`${p}upstream_status`, 'Upstream status from health check', ['name', 'ip', 'port'], 'max');
    this.status = r.counter(`${p}http_status`, 'HTTP status codes per service in APISIX', [
      'code', 'route', 'matched_uri', 'matched_host', 'service', 'consumer', 'node', ...AI_LABELS, 'response_source', ...names(this.extra.status),
    ]);
    this.latency = r.histogram(`${p}http_latency`, 'HTTP request latency in milliseconds per service in APISIX',
      ['type', 'route', 'service', 'consumer', 'node', ...AI_LABELS, ...names(this.extra.latency)], opts.buckets ?? DEFAULT_BUCKETS);
    this.bandwidth = r.counter(`${p}bandwidth`, 'Total bandwidth in bytes consumed per service in APISIX',
      ['type', 'route', 'service', 'consumer', 'node', ...AI_LABELS, ...names(this.extra.bandwidth)]);
    this.llmLatency = r.histogram(`${p}llm_latency`, 'LLM request latency in milliseconds', ['type', ...LLM_LABELS], opts.llmLatencyBuckets ?? DEFAULT_BUCKETS);
    this.llmPromptTokens = r.counter(`${p}llm_prompt_tokens`, 'LLM service consumed prompt tokens', LLM_LABELS);
    this.llmCompletionTokens = r.counter(`${p}llm_completion_tokens`, 'LLM service consumed completion tokens', LLM_LABELS);
    this.llmActiveConnections = r.gauge(`${p}llm_active_connections`, 'Number of active connections to LLM service', [
      'route', 'route_id', 'matched_uri', 'matched_host', 'service', 'service_id', 'consumer', 'node', ...AI_LABELS,
    ]);
    this.llmPromptTokensDist = r.histogram(`${p}llm_prompt_tokens_dist`, 'LLM prompt tokens distribution per request', LLM_LABELS,
      opts.promptTokenBuckets ?? DEFAULT_TOKEN_BUCKETS);
    this.llmCompletionTokensDist = r.histogram(`${p}llm_completion_tokens_dist`, 'LLM completion tokens distribution per request', LLM_LABELS,
      opts.completionTokenBuckets ?? DEFAULT_TOKEN_BUCKETS);
    const batchEntries = r.gauge(`${p}batch_process_entries`, 'batch process remaining entries', ['name', 'route_id', 'server_addr']);
    const batchDropped = r.counter(`${p}batch_process_dropped_entries_total`, 'Log entries and spans dropped by batch processors (retries exhausted or queue full)', ['name']);
    this.streamConnections = r.counter(`${p}stream_connection_total`, 'Total number of connections handled per stream route in APISIX', ['route']);
    this.dubboCalls = r.counter(`${p}dubbo_calls_total`, 'Total number of calls for a specific Dubbo service method', ['route', 'service', 'method', 'status']);
    this.dubboLatency = r.histogram(`${p}dubbo_calls_latency_seconds`, 'Latency of calls for a specific Dubbo service method', ['route', 'service', 'method'],
      XRPC_LATENCY_BUCKETS);
    this.grpcRequests = r.counter(`${p}grpc_requests_total`, 'gRPC requests per route and final grpc-status (Switchyard)', ['route', 'grpc_status']);
    const errors = r.counter(`${p}nginx_metric_errors_total`, 'Number of nginx-lua-prometheus errors');
    const errorsChild = errors.child([]);

    httpStats.start();
    const hostname = os.hostname();
    const registry = r;
    r.onCollect(() => {
      const s = httpStats.view();
      requests.set([], s.requests);
      for (const state of ['active', 'accepted', 'handled', 'reading', 'writing', 'waiting'] as const) connections.set([state], s[state]);
      nodeInfo.set([hostname, VERSION], 1);
      dictCap.clear();
      dictFree.clear();
      for (const sp of v8.getHeapSpaceStatistics()) {
        dictCap.set([`v8:${sp.space_name}`], sp.space_size);
        dictFree.set([`v8:${sp.space_name}`], sp.space_available_size);
      }
      upstreamStatus.clear();
      for (const src of healthSources) {
        for (const c of src.list()) {
          for (const n of c.nodes) {
            upstreamStatus.set([c.name, n.ip, String(n.port)], n.status === 'healthy' || n.status === 'mostly_healthy' ? 1 : 0);
          }
        }
      }
    });
    r.onCollect(async () => {
      reachable.clear();
      indexes.clear();
      if (etcdSources.size === 0) return;
      let ok = false;
      for (const src of etcdSources) {
        const { kinds, revision } = src.modifyIndexes();
        let max = 0;
        for (const k of ETCD_KEYS) {
          const v = kinds.get(k) ?? 0;
          if (v > max) max = v;
          indexes.set([k], Math.max(v, indexes.child([k]).value));
        }
        indexes.set(['max_modify_index'], Math.max(max, indexes.child(['max_modify_index']).value));
        indexes.set(['prev_index'], Math.max(revision, indexes.child(['prev_index']).value));
        indexes.set(['x_etcd_index'], Math.max(revision, indexes.child(['x_etcd_index']).value));
        if (await src.reachable()) ok = true;
      }
      reachable.set([], ok ? 1 : 0);
    });
    r.onCollect(() => {
      errorsChild.value = registry.errors;
      batchEntries.clear();
      for (const b of batchSources()) {
        const c = batchEntries.child([b.name, b.routeId, b.serverAddr]);
        c.value += b.buffered();
      }
      for (const [name, n] of droppedEntries()) batchDropped.child([name]).value = n;
    });
  }

  /**
   * Kept for the composition root's call. etcd stores register themselves (sources.ts) and are probed per
   * scrape; a file-backed store reports no etcd metrics, as in APISIX's yaml mode. So this does nothing.
   */
  setEtcdProbe(_probe: (() => boolean) | null): void {}
}

export { enableClusterMetrics } from './cluster-metrics.ts';

let current: GatewayMetrics | null = null;

/** The series of one route/service/method: a finished call costs a map lookup on its status. */
export class DubboCallSeries {
  readonly owner: GatewayMetrics;
  readonly #latency: HistogramChild;
  readonly #calls = new Map<string, CounterChild>();
  readonly #labels: readonly [string, string, string];

  constructor(owner: GatewayMetrics, route: string, service: string, method: string) {
    this.owner = owner;
    this.#labels = [route, service, method];
    this.#latency = owner.dubboLatency.child(this.#labels);
  }

  /** One finished call (`status`: Dubbo status code, or "exception"). */
  record(status: string, latencyMs: number): void {
    // hot path (one per Dubbo call)
    let calls = this.#calls.get(status);
    if (calls === undefined) {
      calls = this.owner.dubboCalls.child([...this.#labels, status]);
      this.#calls.set(status, calls);
    }
    calls.inc();
    this.#latency.observe(latencyMs / 1000);
  }
}

/** Series shared by every session: the bound below counts them. Keyed by route/service/method. */
const dubboSeries = new Map<string, DubboCallSeries>();
/**
 * Service and method names come from clients: past this many route/service/method tuples, new ones are
 * counted under service and method "_other" so a client cycling names cannot grow the registry without bound.
 */
export const MAX_DUBBO_SERIES = 2000;

function sharedDubboSeries(m: GatewayMetrics, route: string, service: string, method: string): DubboCallSeries {
  let key = `${route}\u0001${service}\u0001${method}`;
  let s = dubboSeries.get(key);
  if (s === undefined && dubboSeries.size >= MAX_DUBBO_SERIES) {
    service = method = '_other';
    key = `${route}\u0001_other\u0001_other`;
    s = dubboSeries.get(key);
  }
  if (s === undefined || s.owner !== m) {
    s = new DubboCallSeries(m, route, service, method);
    dubboSeries.set(key, s);
  }
  return s;
}

/**
 * One Dubbo client session's series, by route, service and method in nested maps (no key string per call).
 * Without metrics (no prometheus plugin) `get` answers null at the cost of one compare; a registry replaced
 * by another configuration empties the cache.
 */
export class DubboSeriesCache {
  #owner: GatewayMetrics | null = null;
  readonly #byRoute = new Map<string, Map<string, Map<string, DubboCallSeries>>>();
  /** Entries held: a client cycling names empties the cache rather than growing it. */
  #size = 0;

  // hot path (one per Dubbo call)
  get(route: string, service: string, method: string): DubboCallSeries | null {
    const m = current;
    if (m === null) return null;
    if (this.#owner !== m || this.#size >= MAX_DUBBO_SERIES) {
      this.#owner = m;
      this.#byRoute.clear();
      this.#size = 0;
    }
    let byService = this.#byRoute.get(route);
    if (byService === undefined) this.#byRoute.set(route, (byService = new Map()));
    let byMethod = byService.get(service);
    if (byMethod === undefined) byService.set(service, (byMethod = new Map()));
    let s = byMethod.get(method);
    if (s === undefined) {
      byMethod.set(method, (s = sharedDubboSeries(m, route, service, method)));
      this.#size++;
    }
    return s;
  }
}

/**
 * The process-wide metrics. With options (plugin_attr.prometheus), a configuration different from the current
 * one replaces it (names, buckets and labels are fixed per registry); without, the current one (or defaults).
 */
export function gatewayMetrics(opts?: MetricsOptions): GatewayMetrics {
  if (current === null || (opts !== undefined && JSON.stringify(opts) !== current.optionsKey)) current = new GatewayMetrics(opts ?? {});
  return current;
}
