// Launches the gateway as the CLI would (`node bin/switchyard.mjs start -c <tmp>/config.yaml`): one worker
// process, access log off, log level warn, a random admin key, the standalone apisix.yaml or etcd, and
// optional stream (TCP) listeners. Resolves when /status/ready answers 200 and the listeners accept.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freePort } from '../../test/helpers/ports.ts';
import { spawnService, waitListening, type Service } from './service.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface GatewayOptions {
  dir: string;
  /** apisix.yaml content (standalone provider); ignored with etcd. */
  standalone?: Record<string, unknown>;
  etcd?: { endpoint: string; prefix: string };
  /** TCP stream listener ports (127.0.0.1). */
  streamPorts?: number[];
  /** HTTPS listener port (apisix.ssl.listen on 127.0.0.1); certificates come from `ssls`. */
  httpsPort?: number;
  /** Also serve HTTP/3 (QUIC, UDP) on httpsPort: `enable_http3: true` on the ssl listen entry. */
  http3?: boolean;
  /** apisix.ssl.fallback_sni: the certificate QUIC handshakes use (quiche has no SNI callback). */
  fallbackSni?: string;
  /** config.yaml `plugins` (APISIX's default list when absent). */
  plugins?: string[];
  pluginAttr?: Record<string, unknown>;
  /** Checkout to launch (default: this one); the http-ab scenario compares two builds. */
  root?: string;
  /** Extra `switchyard:` keys (http1_engine, access_log) over the defaults below. */
  switchyard?: Record<string, unknown>;
  /** Extra environment of the gateway process (bench/lib/gc-probe.ts probeEnv). */
  env?: Record<string, string>;
}

export interface GatewayService extends Service {
  readonly port: number;
  readonly adminUrl: string;
  admin(method: string, p: string, body?: unknown): Promise<{ status: number; body: unknown }>;
}

export async function startGateway(opts: GatewayOptions): Promise<GatewayService> {
  await mkdir(opts.dir, { recursive: true });
  const [port, adminPort, statusPort, metricsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const adminKey = randomBytes(16).toString('hex');
  const stream = opts.streamPorts ?? [];
  const conf: Record<string, unknown> = {
    apisix: {
      node_listen: [{ ip: '127.0.0.1', port }],
      proxy_mode: stream.length > 0 ? 'http&stream' : 'http',
      stream_proxy: { tcp: stream.map((p) => `127.0.0.1:${p}`), udp: [] },
      ...(opts.httpsPort !== undefined
        ? {
          ssl: {
            listen: [{ ip: '127.0.0.1', port: opts.httpsPort, ...(opts.http3 === true ? { enable_http3: true } : {}) }],
            ...(opts.fallbackSni !== undefined ? { fallback_sni: opts.fallbackSni } : {}),
          },
        }
        : {}),
      status: { ip: '127.0.0.1', port: statusPort },
      enable_control: false,
    },
    deployment: {
      role: 'traditional',
      role_traditional: { config_provider: opts.etcd ? 'etcd' : 'yaml' },
      admin: {
        admin_key: [{ name: 'admin', key: adminKey, role: 'admin' }],
        admin_listen: { ip: '127.0.0.1', port: adminPort },
        allow_admin: ['127.0.0.0/8'],
      },
      ...(opts.etcd ? { etcd: { host: [opts.etcd.endpoint], prefix: opts.etcd.prefix } } : {}),
    },
    switchyard: { worker_processes: 1, access_log: { enable: false }, ...opts.switchyard },
    ...(opts.plugins ? { plugins: opts.plugins } : {}),
    // The prometheus exporter defaults to 127.0.0.1:9091, which two gateways of one scenario would share.
    plugin_attr: { prometheus: { export_addr: { ip: '127.0.0.1', port: metricsPort } }, ...opts.pluginAttr },
  };
  const configFile = path.join(opts.dir, 'config.yaml');
  await writeFile(configFile, stringify(conf), { mode: 0o600 });
  if (!opts.etcd) await writeFile(path.join(opts.dir, 'apisix.yaml'), stringify(opts.standalone ?? {}) + '#END\n');

  const root = opts.root ?? ROOT;
  const svc = spawnService('gateway', process.execPath, [path.join(root, 'bin/switchyard.mjs'), 'start', '-c', configFile], {
    cwd: root,
    env: { ...process.env, SWITCHYARD_LOG_LEVEL: 'warn', NODE_ENV: 'production', ...opts.env },
  });
  await waitListening(svc, [port, ...stream, ...(opts.httpsPort !== undefined ? [opts.httpsPort] : [])], 60_000);
  await waitReady(svc, statusPort, 60_000);

  const adminUrl = `http://127.0.0.1:${adminPort}/apisix/admin`;
  return {
    ...svc,
    port,
    adminUrl,
    admin: async (method, p, body) => {
      const res = await fetch(adminUrl + p, {
        method,
        headers: { 'x-api-key': adminKey, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      return { status: res.status, body: parsed };
    },
  };
}

/** Polls /status/ready until 200; fails fast (with the gateway's output) if the process exits. */
async function waitReady(svc: Service, statusPort: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${statusPort}/status/ready`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      /* not listening yet */
    }
    if (!svc.alive() || Date.now() > deadline) {
      await svc.stop();
      throw new Error(`gateway not ready (${svc.alive() ? 'timeout' : 'exited'}):\n${svc.output().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A route object proxying to one upstream node. */
export function route(id: string, uri: string, upstreamPort: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, uri, upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${upstreamPort}`]: 1 } }, ...extra };
}
