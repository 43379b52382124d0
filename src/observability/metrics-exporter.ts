// The Prometheus scrape endpoint (APISIX plugin_attr.prometheus.export_addr, default 127.0.0.1:9091, path
// export_uri /apisix/prometheus/metrics). Serves this process's metrics, or in a cluster primary the merge of
// its own and every worker's (cluster-metrics.ts). With enable_export_server: false the same text is served on
// the data plane through the public-api plugin instead.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { clusterMetricsText, installClusterMetricsPrimary } from './cluster-metrics.ts';
import { gatewayMetrics, metricsOptionsFromAttr } from './metrics.ts';
import { TEXT_CONTENT_TYPE } from './registry.ts';

export interface MetricsExporterOptions {
  readonly ip?: string;
  readonly port?: number;
  readonly path?: string;
  /** Cluster primary: merge the workers' metrics (kept for the caller; a primary always merges). */
  readonly aggregate?: boolean;
}

export interface MetricsExporter {
  listen(): Promise<{ host: string; port: number }>;
  address(): { host: string; port: number } | null;
  close(): Promise<void>;
}

export const DEFAULT_EXPORT_ADDR = { ip: '127.0.0.1', port: 9091 } as const;
export const DEFAULT_EXPORT_URI = '/apisix/prometheus/metrics';

export interface ExporterSettings {
  ip: string;
  port: number;
  path: string;
  enabled: boolean;
}

let settings: ExporterSettings = { ip: DEFAULT_EXPORT_ADDR.ip, port: DEFAULT_EXPORT_ADDR.port, path: DEFAULT_EXPORT_URI, enabled: true };

/**
 * Reads plugin_attr.prometheus (APISIX names: export_addr {ip, port}, export_uri, enable_export_server) and,
 * since the composition root calls it once before anything records, configures the process metrics from the
 * same attributes (metric_prefix, default_buckets, metrics.*.extra_labels) and the cluster primary's side.
 */
export function exporterOptionsFromAttr(attr: Record<string, unknown> | undefined): ExporterSettings {
  const addr = (attr?.export_addr ?? {}) as { ip?: unknown; port?: unknown };
  settings = {
    ip: typeof addr.ip === 'string' ? addr.ip : DEFAULT_EXPORT_ADDR.ip,
    port: typeof addr.port === 'number' ? addr.port : DEFAULT_EXPORT_ADDR.port,
    path: typeof attr?.export_uri === 'string' ? attr.export_uri : DEFAULT_EXPORT_URI,
    enabled: attr?.enable_export_server !== false,
  };
  gatewayMetrics(metricsOptionsFromAttr(attr));
  installClusterMetricsPrimary();
  return settings;
}

/** The last settings read by exporterOptionsFromAttr (public-api serves export_uri when the server is off). */
export function exporterSettings(): ExporterSettings {
  return settings;
}

export function createMetricsExporter(opts: MetricsExporterOptions = {}): MetricsExporter {
  const path = opts.path ?? DEFAULT_EXPORT_URI;
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const p = q < 0 ? url : url.slice(0, q);
    if (p !== path || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('404 Not Found\n');
      return;
    }
    clusterMetricsText().then(
      (text) => {
        res.writeHead(200, { 'content-type': TEXT_CONTENT_TYPE });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`failed to collect metrics: ${err.message}\n`);
      },
    );
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 5_000;
  let bound: { host: string; port: number } | null = null;
  return {
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port ?? DEFAULT_EXPORT_ADDR.port, opts.ip ?? DEFAULT_EXPORT_ADDR.ip, () => {
          server.off('error', reject);
          const a = server.address() as AddressInfo;
          bound = { host: a.address, port: a.port };
          resolve(bound);
        });
      }),
    address: () => bound,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
