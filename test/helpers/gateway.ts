// An in-process gateway for tests: config.yaml in a temp dir, the embedded standalone provider (Admin API
// writes persisted to apisix.yaml) or etcd, random loopback ports.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { parseLocalConfig, type LocalConfig } from '../../src/config/local.ts';
import { parseKey } from '../../src/config/resources.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startGateway, type Gateway } from '../../src/main.ts';
import { freePort } from './ports.ts';
import { tempDir, waitFor } from './proc.ts';

export const ADMIN_KEY = 'test-admin-key-0123456789abcdef';

export interface TestGateway {
  readonly gw: Gateway;
  readonly url: string;
  readonly port: number;
  /** The HTTPS listener (apisix.ssl.listen) on its own random loopback port. */
  readonly httpsPort: number;
  readonly adminUrl: string;
  readonly dir: string;
  readonly config: LocalConfig;
  /** Admin API call; returns status and parsed JSON (or text). */
  admin(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Waits until the data plane runs the store's latest revision. */
  synced(): Promise<void>;
  /** PUT a resource through the Admin API and wait for the data plane. Throws on a non-2xx answer. */
  put(p: string, body: unknown): Promise<any>;
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  /** Extra config.yaml content merged at the top level (objects merged one level deep). */
  config?: Record<string, any>;
  /** Initial apisix.yaml content (standalone provider). */
  standalone?: Record<string, unknown>;
  /** Use etcd instead of the standalone file. */
  etcd?: { endpoint: string; prefix?: string };
}

/** `n` distinct free ports (independent picks could repeat a number: the gateway then collides with itself). */
async function distinctPorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

function isAddressInUse(err: unknown): boolean {
  for (let e: any = err; e !== undefined && e !== null; e = e.cause) if (e.code === 'EADDRINUSE') return true;
  return false;
}

export async function startTestGateway(opts: TestGatewayOptions = {}): Promise<TestGateway> {
  const { dir, cleanup } = await tempDir('swy-gw-');
  // A port checked free can still be taken by another test process before the gateway binds it: on
  // EADDRINUSE the gateway starts again on fresh ports (bounded).
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOn(opts, dir, cleanup, await distinctPorts(5));
    } catch (err) {
      if (attempt >= 4 || !isAddressInUse(err)) {
        await cleanup();
        throw err;
      }
    }
  }
}

async function startOn(opts: TestGatewayOptions, dir: string, cleanup: () => Promise<void>, ports: number[]): Promise<TestGateway> {
  const [httpPort, adminPort, statusPort, metricsPort, httpsPort] = ports as [number, number, number, number, number];
  const base: Record<string, any> = {
    apisix: {
      node_listen: [{ ip: '127.0.0.1', port: httpPort }],
      ssl: { listen: [{ ip: '127.0.0.1', port: httpsPort }] },
      status: { ip: '127.0.0.1', port: statusPort },
      enable_control: false,
    },
    deployment: {
      role: 'traditional',
      role_traditional: { config_provider: opts.etcd ? 'etcd' : 'yaml' },
      admin: {
        admin_key: [{ name: 'admin', key: ADMIN_KEY, role: 'admin' }],
        admin_listen: { ip: '127.0.0.1', port: adminPort },
        allow_admin: ['127.0.0.0/8'],
      },
      ...(opts.etcd ? { etcd: { host: [opts.etcd.endpoint], prefix: opts.etcd.prefix ?? `/swy${httpPort}` } } : {}),
    },
    switchyard: { worker_processes: 1, access_log: { enable: false } },
    // Gateways run in parallel in tests: the Prometheus exporter gets its own port too.
    plugin_attr: { prometheus: { export_addr: { ip: '127.0.0.1', port: metricsPort } } },
  };
  for (const [k, v] of Object.entries(opts.config ?? {})) {
    base[k] = v !== null && typeof v === 'object' && !Array.isArray(v) ? { ...(base[k] ?? {}), ...v } : v;
  }
  const configFile = path.join(dir, 'config.yaml');
  await writeFile(configFile, stringify(base));
  if (opts.standalone) await writeFile(path.join(dir, 'apisix.yaml'), stringify(opts.standalone) + '#END\n');
  const parsed = parseLocalConfig(stringify(base));
  if (!parsed.ok) throw new Error(`test config invalid: ${parsed.errors.join('; ')}`);
  const gw = await startGateway({ config: parsed.config, configFile, role: 'all', logger: silentLogger });
  const adminUrl = `http://127.0.0.1:${gw.adminPort()}/apisix/admin`;
  const admin = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(adminUrl + p, {
      method,
      headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsedBody: unknown = text;
    try {
      parsedBody = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsedBody as any };
  };
  const synced = async () => {
    await waitFor(() => {
      const store = gw.store!;
      const snap = gw.manager?.snapshot;
      return snap !== null && snap !== undefined && snap.revision >= store.revision;
    }, 10_000, 5);
  };
  return {
    gw,
    url: `http://127.0.0.1:${httpPort}`,
    port: httpPort,
    httpsPort,
    adminUrl,
    dir,
    config: parsed.config,
    admin,
    synced,
    put: async (p: string, body: unknown) => {
      const r = await admin('PUT', p, body);
      if (r.status >= 300) throw new Error(`PUT ${p} -> ${r.status} ${JSON.stringify(r.body)}`);
      // The answer's key names the stored object: the URL's first segment is not its kind for a credential
      // (`/consumers/u/credentials/c` is kind credentials, id `u/credentials/c`). The store's own view may
      // trail an etcd write by a watch event, and an update finds the old version already there: wait until
      // the view holds at least the version a fresh read sees, then until the data plane runs it.
      const store = gw.store!;
      const loc = typeof r.body?.key === 'string' ? parseKey(store.prefix, r.body.key) : null;
      const written = loc === null ? undefined : await store.fetch(loc.kind, loc.id);
      if (loc !== null && written !== undefined) {
        await waitFor(() => (store.get(loc.kind, loc.id)?.modifiedIndex ?? -1) >= written.modifiedIndex, 10_000, 5);
      }
      await synced();
      return r.body;
    },
    close: async () => {
      await gw.close({ graceful: false });
      await cleanup();
    },
  };
}
