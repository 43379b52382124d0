// Test doubles for the plugin runtime: a registry builder, plugin envs and an in-memory HttpContext.
import type { JsonObject } from '../../src/config/resources.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import type { HeaderMap, HeaderValue, HttpContext } from '../../src/plugin/context.ts';
import type { PluginDef, PluginEnv, PluginInstance } from '../../src/plugin/plugin.ts';
import { PluginRegistry } from '../../src/plugin/registry.ts';
import { MapVars, type VarValue } from '../../src/router/vars.ts';
import { checkExpr } from '../../src/router/expr.ts';
import { validatePluginConf } from '../../src/schema/validator.ts';

const noConsumers = { find: () => undefined, withPlugin: () => [] };

export function envFor(metadata?: JsonObject, attr?: JsonObject): (def: PluginDef, conf: JsonObject) => PluginEnv {
  return () => ({ logger: silentLogger, metadata, attr, scopeKey: 'test', consumers: noConsumers });
}

export function stubPlugin(
  name: string,
  priority: number,
  make: (conf: JsonObject) => PluginInstance,
  extra: Partial<PluginDef> = {},
): PluginDef {
  return {
    name,
    version: '0.1',
    priority,
    schema: { type: 'object' },
    subsystems: ['http'],
    status: 'stable',
    create: (conf) => make(conf),
    ...extra,
  };
}

export function registryOf(...defs: PluginDef[]): PluginRegistry {
  const r = new PluginRegistry();
  for (const d of defs) r.register(d);
  r.setEnabled(
    defs.filter((d) => d.subsystems.includes('http')).map((d) => d.name),
    defs.filter((d) => d.subsystems.includes('stream')).map((d) => d.name),
  );
  return r;
}

class Headers {
  readonly headers: HeaderMap = {};
  setHeader(name: string, value: HeaderValue | null): void {
    const key = name.toLowerCase();
    if (value === null) delete this.headers[key];
    else this.headers[key] = value;
  }
}

export interface FakeInit {
  method?: string;
  path?: string;
  query?: string;
  headers?: Record<string, string>;
  vars?: Record<string, VarValue>;
  scheme?: 'http' | 'https';
  remoteAddr?: string;
}

export type FakeContext = HttpContext & {
  readonly vars: MapVars;
  readonly response: HttpContext['response'] & { body: Buffer | string | undefined };
};

export function fakeContext(init: FakeInit = {}): FakeContext {
  const req = new Headers();
  for (const [k, v] of Object.entries(init.headers ?? {})) req.setHeader(k, v);
  const res = new Headers();
  const path = init.path ?? '/';
  const query = init.query ?? '';
  const vars = new MapVars({
    uri: path,
    request_uri: query === '' ? path : `${path}?${query}`,
    args: query,
    request_method: init.method ?? 'GET',
    scheme: init.scheme ?? 'http',
    remote_addr: init.remoteAddr ?? '127.0.0.1',
    remote_port: 40000,
    host: (init.headers?.host ?? 'localhost').split(':')[0],
    ...init.vars,
  });
  for (const [k, v] of Object.entries(init.headers ?? {})) {
    vars.set('http_' + k.toLowerCase().replace(/-/g, '_'), v);
  }
  const response = {
    status: 200,
    body: undefined as Buffer | string | undefined,
    headers: res.headers,
    setHeader: (n: string, v: HeaderValue | null) => res.setHeader(n, v),
    replaceBody(b: Buffer | string) {
      this.body = b;
    },
    trailers: null as Record<string, string> | null,
  };
  return {
    vars,
    request: {
      method: init.method ?? 'GET',
      path,
      query,
      headers: req.headers,
      setHeader: (n: string, v: HeaderValue | null) => req.setHeader(n, v),
      remoteAddr: init.remoteAddr ?? '127.0.0.1',
      remotePort: 40000,
      serverAddr: '127.0.0.1',
      serverPort: 9080,
      scheme: init.scheme ?? 'http',
      httpVersion: '1.1',
      host: 'localhost',
      readBody: async () => Buffer.alloc(0),
      setBody: () => undefined,
    },
    response,
    routeId: 'r1',
    serviceId: undefined,
    consumer: null,
    setUpstream: () => undefined,
    setUpstreamProtocol: () => undefined,
    upstreamAddr: undefined,
    upstreamStatus: undefined,
    startNs: 0n,
    pluginData: new Map(),
    clientSignal: new AbortController().signal,
  };
}

/** Validates `conf` against the plugin's schema (defaults applied), like the snapshot builder, then creates it. */
export function instantiate(
  def: PluginDef,
  conf: JsonObject,
  env: { metadata?: JsonObject; attr?: JsonObject } = {},
): PluginInstance {
  const v = validatePluginConf(def, def.name, conf, 'route', true, checkExpr);
  if (!v.ok) throw new Error(v.error);
  return def.create(v.value, envFor(env.metadata, env.attr)(def, v.value));
}

/** The validation error of `conf`, or null. */
export function confError(def: PluginDef, conf: JsonObject, schemaType: 'route' | 'metadata' = 'route'): string | null {
  const v = validatePluginConf(def, def.name, conf, schemaType, true, checkExpr);
  return v.ok ? null : v.error;
}
