// The process metrics registry (prom-client), with APISIX's Prometheus metric names (prefix `apisix_` by
// default, plugin_attr.prometheus.metric_prefix):
//   http_status{code,route,matched_uri,matched_host,service,consumer,node}          counter
//   http_latency{type=request|upstream|apisix,route,service,consumer,node}         histogram (ms)
//   bandwidth{type=ingress|egress,route,service,consumer,node}                     counter (bytes)
//   http_requests_total                                                            gauge
//   nginx_http_current_connections{state=active|reading|writing|waiting|accepted|handled}  gauge
//   etcd_reachable, node_info{hostname,version}                                    gauges
// The prometheus plugin records the per-request series in its log phase; the listeners report connections
// and requests through `gatewayStats`; main.ts may install an etcd reachability probe.
// In a cluster, workers call enableClusterMetrics() and the primary's exporter aggregates them.
import os from 'node:os';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { VERSION } from '../version.ts';

/** APISIX's default latency buckets (milliseconds). */
export const DEFAULT_BUCKETS: readonly number[] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000];

export interface MetricsOptions {
  /** Metric name prefix (APISIX `metric_prefix`, default `apisix_`). */
  readonly prefix?: string;
  /** Latency histogram buckets in ms (APISIX `default_buckets`). */
  readonly buckets?: readonly number[];
}

/** Connection and request counts reported by the listeners (nginx stub_status equivalents). */
export class GatewayStats {
  accepted = 0;
  handled = 0;
  active = 0;
  /** Requests whose headers are being read / whose responses are being written. */
  reading = 0;
  writing = 0;
  requests = 0;

  connectionOpened(): void {
    this.accepted++;
    this.handled++;
    this.active++;
  }

  connectionClosed(): void {
    if (this.active > 0) this.active--;
  }

  requestStarted(): void {
    this.requests++;
    this.writing++;
  }

  requestFinished(): void {
    if (this.writing > 0) this.writing--;
  }
}

export const gatewayStats = new GatewayStats();

export class GatewayMetrics {
  readonly registry: Registry;
  readonly status: Counter<string>;
  readonly latency: Histogram<string>;
  readonly bandwidth: Counter<string>;
  readonly #etcd: { probe: (() => boolean) | null } = { probe: null };

  constructor(opts: MetricsOptions = {}) {
    const p = opts.prefix ?? 'apisix_';
    const registry = new Registry();
    this.registry = registry;
    this.status = new Counter({
      name: `${p}http_status`,
      help: 'HTTP status codes per service in APISIX',
      labelNames: ['code', 'route', 'matched_uri', 'matched_host', 'service', 'consumer', 'node'],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: `${p}http_latency`,
      help: 'HTTP request latency in milliseconds per service in APISIX',
      labelNames: ['type', 'route', 'service', 'consumer', 'node'],
      buckets: [...(opts.buckets ?? DEFAULT_BUCKETS)],
      registers: [registry],
    });
    this.bandwidth = new Counter({
      name: `${p}bandwidth`,
      help: 'Total bandwidth in bytes consumed per service in APISIX',
      labelNames: ['type', 'route', 'service', 'consumer', 'node'],
      registers: [registry],
    });
    const stats = gatewayStats;
    new Gauge({
      name: `${p}http_requests_total`,
      help: 'The total number of client requests since APISIX started',
      registers: [registry],
      collect() {
        this.set(stats.requests);
      },
    });
    new Gauge({
      name: `${p}nginx_http_current_connections`,
      help: 'Number of HTTP connections',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        this.set({ state: 'active' }, stats.active);
        this.set({ state: 'reading' }, stats.reading);
        this.set({ state: 'writing' }, stats.writing);
        this.set({ state: 'waiting' }, Math.max(0, stats.active - stats.reading - stats.writing));
        this.set({ state: 'accepted' }, stats.accepted);
        this.set({ state: 'handled' }, stats.handled);
      },
    });
    const etcd = this.#etcd;
    new Gauge({
      name: `${p}etcd_reachable`,
      help: 'Config server etcd reachable from APISIX, 0 is unreachable',
      registers: [registry],
      aggregator: 'max',
      collect() {
        const probe = etcd.probe;
        this.set(probe === null ? 1 : probe() ? 1 : 0);
      },
    });
    const info = new Gauge({
      name: `${p}node_info`,
      help: 'Info of APISIX node',
      labelNames: ['hostname', 'version'],
      registers: [registry],
      aggregator: 'first',
    });
    info.set({ hostname: os.hostname(), version: VERSION }, 1);
  }

  /** Installs the etcd reachability probe (absent: reported reachable, e.g. standalone file mode). */
  setEtcdProbe(probe: (() => boolean) | null): void {
    this.#etcd.probe = probe;
  }
}

let current: GatewayMetrics | null = null;

/** The process-wide metrics; created on first use with `opts` (later options are ignored). */
export function gatewayMetrics(opts?: MetricsOptions): GatewayMetrics {
  if (current === null) current = new GatewayMetrics(opts);
  return current;
}

/**
 * Cluster worker side: answers the primary's aggregation requests with this process's registry. Call once in
 * each worker; the primary serves createMetricsExporter({..., aggregate: true}).
 */
export function enableClusterMetrics(metrics: GatewayMetrics = gatewayMetrics()): void {
  AggregatorRegistry.setRegistries([metrics.registry]);
  new AggregatorRegistry();
}
