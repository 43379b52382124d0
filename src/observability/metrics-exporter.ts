// The Prometheus scrape endpoint (APISIX plugin_attr.prometheus.export_addr, default 127.0.0.1:9091, path
// export_uri /apisix/prometheus/metrics). Serves this process's registry, or in a cluster primary the sum of
// every worker's registry (prom-client AggregatorRegistry; workers call enableClusterMetrics()).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AggregatorRegistry } from 'prom-client';
import { gatewayMetrics, type GatewayMetrics } from './metrics.ts';

export interface MetricsExporterOptions {
  readonly ip?: string;
  readonly port?: number;
  readonly path?: string;
  /** Defaults to the process-wide metrics. */
  readonly metrics?: GatewayMetrics;
  /** Cluster primary: aggregate the workers' registries instead of serving the local one. */
  readonly aggregate?: boolean;
}

export interface MetricsExporter {
  listen(): Promise<{ host: string; port: number }>;
  address(): { host: string; port: number } | null;
  close(): Promise<void>;
}

export const DEFAULT_EXPORT_ADDR = { ip: '127.0.0.1', port: 9091 } as const;
export const DEFAULT_EXPORT_URI = '/apisix/prometheus/metrics';

/** Reads plugin_attr.prometheus into exporter options (APISIX names: export_addr {ip, port}, export_uri). */
export function exporterOptionsFromAttr(attr: Record<string, unknown> | undefined): { ip: string; port: number; path: string; enabled: boolean } {
  const addr = (attr?.export_addr ?? {}) as { ip?: unknown; port?: unknown };
  return {
    ip: typeof addr.ip === 'string' ? addr.ip : DEFAULT_EXPORT_ADDR.ip,
    port: typeof addr.port === 'number' ? addr.port : DEFAULT_EXPORT_ADDR.port,
    path: typeof attr?.export_uri === 'string' ? attr.export_uri : DEFAULT_EXPORT_URI,
    enabled: attr?.enable_export_server !== false,
  };
}

export function createMetricsExporter(opts: MetricsExporterOptions = {}): MetricsExporter {
  const path = opts.path ?? DEFAULT_EXPORT_URI;
  const metrics = opts.metrics ?? gatewayMetrics();
  const aggregator = opts.aggregate === true ? new AggregatorRegistry() : null;
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const p = q < 0 ? url : url.slice(0, q);
    if (p !== path || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('404 Not Found\n');
      return;
    }
    const body = aggregator !== null ? aggregator.clusterMetrics() : metrics.registry.metrics();
    body.then(
      (text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
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
