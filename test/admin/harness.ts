// Shared setup for Admin API tests: a test-owned plugin registry with tiny plugin definitions, an admin server
// on a random loopback port, and a small fetch-based client.
import type { ConfigStore } from '../../src/config/store.ts';
import { createAdminServer, type AdminServerConf } from '../../src/admin/server.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import type { PluginDef } from '../../src/plugin/plugin.ts';
import { PluginRegistry } from '../../src/plugin/registry.ts';

export const ADMIN_KEY = 'edd1c9f034335f136f87ad84b625c8f1';
export const VIEWER_KEY = 'viewer-key-0123456789abcdef';

function def(name: string, priority: number, extra: Partial<PluginDef> = {}): PluginDef {
  return {
    name,
    version: '0.1',
    priority,
    schema: { type: 'object' },
    subsystems: ['http'],
    status: 'stable',
    create: () => ({}),
    ...extra,
  };
}

/** key-auth (auth, consumer schema), limit-count, traffic-split, grpc-transcode, a metadata plugin, a stream one. */
export function testRegistry(): PluginRegistry {
  const reg = new PluginRegistry();
  reg.register(
    def('key-auth', 2500, {
      type: 'auth',
      schema: { type: 'object', properties: { header: { type: 'string' } } },
      consumerSchema: { type: 'object', properties: { key: { type: 'string' } }, required: ['key'] },
    }),
  );
  reg.register(
    def('limit-count', 1002, {
      schema: {
        type: 'object',
        properties: { count: { type: 'integer', exclusiveMinimum: 0 }, time_window: { type: 'integer', exclusiveMinimum: 0 } },
        required: ['count', 'time_window'],
      },
    }),
  );
  reg.register(def('traffic-split', 966));
  reg.register(def('grpc-transcode', 506));
  reg.register(
    def('http-logger', 410, {
      metadataSchema: {
        type: 'object',
        properties: { log_format: { type: 'object' } },
      },
    }),
  );
  reg.register(def('mqtt-proxy', 1000, { subsystems: ['stream'] }));
  reg.setEnabled(['key-auth', 'limit-count', 'traffic-split', 'grpc-transcode', 'http-logger'], ['mqtt-proxy']);
  return reg;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

export interface AdminHarness {
  port: number;
  base: string;
  reloads: number;
  api(method: string, path: string, opts?: { body?: unknown; rawBody?: string; key?: string | null; headers?: Record<string, string> }): Promise<ApiResponse>;
  close(): Promise<void>;
}

export async function startAdmin(opts: {
  store: ConfigStore;
  conf?: Partial<AdminServerConf>;
  streamEnabled?: boolean;
  registry?: PluginRegistry;
}): Promise<AdminHarness> {
  const conf: AdminServerConf = {
    admin_key: [
      { name: 'admin', key: ADMIN_KEY, role: 'admin' },
      { name: 'viewer', key: VIEWER_KEY, role: 'viewer' },
    ],
    admin_key_required: true,
    allow_admin: ['127.0.0.0/24'],
    enable_admin_cors: false,
    admin_listen: { ip: '127.0.0.1', port: 0 },
    ...opts.conf,
  };
  const h: AdminHarness = {
    port: 0,
    base: '',
    reloads: 0,
    api: async (method, path, o = {}) => {
      const headers: Record<string, string> = { ...o.headers };
      const key = o.key === undefined ? ADMIN_KEY : o.key;
      if (key !== null) headers['X-API-KEY'] = key;
      let body: string | undefined = o.rawBody;
      if (o.body !== undefined) body = JSON.stringify(o.body);
      if (body !== undefined) headers['Content-Type'] ??= 'application/json';
      const res = await fetch(`${h.base}${path}`, { method, headers, body, signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      let json: unknown;
      try {
        json = text === '' ? undefined : JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: res.status, headers: res.headers, text, json };
    },
    close: async () => {
      await server.close();
    },
  };
  const server = createAdminServer({
    store: opts.store,
    plugins: opts.registry ?? testRegistry(),
    conf,
    streamEnabled: opts.streamEnabled ?? true,
    onPluginsReload: async () => {
      h.reloads++;
    },
    logger: silentLogger,
    version: '0.1.0',
  });
  const { port } = await server.listen();
  h.port = port;
  h.base = `http://127.0.0.1:${port}`;
  return h;
}

export const UPSTREAM = { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } };
