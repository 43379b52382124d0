// config.yaml: load, substitute ${{VAR}}, validate against LOCAL_CONFIG_SCHEMA with defaults, and derive the
// settings the composition root needs. Errors carry the key path (apisix.node_listen[0]).
import { randomInt } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parseDocument, isMap } from 'yaml';
import { substituteEnv } from './env-subst.ts';
import { APISIX_DISCOVERY_TYPES, applyApisixAliases, compatWarnings, normalizeApisixShapes } from './local-compat.ts';
import { LOCAL_CONFIG_SCHEMA } from './local-schema.ts';
import { unsafeJsonReason } from './safe-json.ts';

export interface AdminKey {
  name: string;
  key: string;
  role: 'admin' | 'viewer';
}

export type ListenEntry = number | { ip?: string; port: number; enable_http2?: boolean };
export type StreamEntry =
  | number
  | string
  | { addr: number | string; tls?: boolean; proxy_protocol?: boolean; proxy_protocol_to_upstream?: boolean | 'v1' | 'v2' };

/** config.yaml after defaults. Only the parts Switchyard reads are typed; the rest stays as parsed. */
export interface LocalConfig {
  apisix: {
    node_listen: ListenEntry[];
    proxy_mode: 'http' | 'stream' | 'http&stream';
    stream_proxy: { tcp: StreamEntry[]; udp: (number | string)[] };
    enable_http2: boolean;
    enable_admin: boolean;
    enable_dev_mode: boolean;
    enable_server_tokens: boolean;
    enable_control: boolean;
    control: { ip: string; port: number };
    status: { ip: string; port: number };
    trusted_addresses: string[];
    show_upstream_status_in_response_header: boolean;
    delete_uri_tail_slash: boolean;
    normalize_uri_like_servlet: boolean;
    disable_upstream_healthcheck: boolean;
    resolver_timeout: number;
    [k: string]: unknown;
  };
  deployment: {
    role: 'traditional' | 'data_plane' | 'control_plane';
    role_traditional: { config_provider: 'etcd' | 'yaml' };
    role_data_plane: { config_provider: 'etcd' | 'yaml' | 'json' };
    role_control_plane: { config_provider: 'etcd' };
    etcd: {
      host: string[];
      prefix: string;
      timeout: number;
      user?: string;
      password?: string;
      tls?: { cert?: string; key?: string; verify?: boolean; sni?: string };
      [k: string]: unknown;
    };
    admin: {
      admin_key: AdminKey[];
      admin_key_required: boolean;
      allow_admin: string[];
      admin_listen: { ip: string; port: number };
      enable_admin_cors: boolean;
      [k: string]: unknown;
    };
  };
  switchyard: {
    worker_processes: 'auto' | number;
    http1_engine: 'node' | 'socket';
    upstream_http1_client: 'undici' | 'socket';
    standalone_file?: string;
    limits: {
      max_header_size: number;
      max_headers_count: number;
      client_max_body_size: number;
      client_header_timeout: number;
      client_body_timeout: number;
      keepalive_timeout: number;
      graceful_shutdown_timeout: number;
    };
    access_log: { enable: boolean; path: string; format?: string; format_escape: 'default' | 'json' | 'none'; buffer?: number };
  };
  plugins?: string[];
  stream_plugins?: string[];
  plugin_attr: Record<string, Record<string, unknown>>;
  [k: string]: unknown;
}

/**
 * `warnings`: APISIX keys of the file that have no effect here (reported once at start and by `validate`).
 */
export type LoadResult =
  | { ok: true; config: LocalConfig; file: string; warnings: string[] }
  | { ok: false; errors: string[] };

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validate = ajv.compile(LOCAL_CONFIG_SCHEMA);

/** `/apisix/node_listen/0` -> `apisix.node_listen[0]` */
function keyPath(instancePath: string, extra?: string): string {
  const parts = instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  let out = '';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out === '' ? p : `.${p}`;
  return out === '' ? '(root)' : out;
}

function describe(e: ErrorObject): string {
  switch (e.keyword) {
    case 'additionalProperties':
      if (e.instancePath === '/discovery') {
        return `discovery.${String(e.params.additionalProperty)}: unknown discovery type (APISIX has ${APISIX_DISCOVERY_TYPES.join(', ')})`;
      }
      return `${keyPath(e.instancePath, String(e.params.additionalProperty))}: unknown key`;
    case 'required':
      return `${keyPath(e.instancePath, String(e.params.missingProperty))}: is required`;
    default:
      return `${keyPath(e.instancePath)}: ${mismatch(e) ?? e.message ?? e.keyword}`;
  }
}

/** The expectation of a type-level error ("integer", "one of ..."), null for errors about the value itself. */
function mismatch(e: ErrorObject): string | null {
  if (e.keyword === 'type') return `must be ${String(e.params.type)}`;
  if (e.keyword === 'const') return `must be ${JSON.stringify(e.params.allowedValue)}`;
  if (e.keyword === 'enum') {
    return `must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return null;
}

/**
 * One message per key path. Ajv reports every failed branch of a oneOf; when a branch of the value's type
 * failed deeper (e.g. `>= 1`), the other branches' type mismatches are noise and dropped; otherwise the
 * alternatives are merged into one line ("must be integer or object").
 */
function collectErrors(all: readonly ErrorObject[]): string[] {
  const errs = all.filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'anyOf' && e.keyword !== 'if');
  const branchOf = (e: ErrorObject): string | null => {
    const i = e.schemaPath.lastIndexOf('/oneOf/');
    return i < 0 ? null : e.schemaPath.slice(0, i);
  };
  const merged = new Map<string, string[]>();
  const out: string[] = [];
  for (const e of errs) {
    const m = mismatch(e);
    const oneOf = branchOf(e);
    if (m === null || oneOf === null) {
      out.push(describe(e));
      continue;
    }
    const deeper = errs.some(
      (o) => o !== e && mismatch(o) === null && o.schemaPath.startsWith(`${oneOf}/oneOf/`) &&
        (o.instancePath === e.instancePath || o.instancePath.startsWith(`${e.instancePath}/`)),
    );
    if (deeper) continue;
    const p = keyPath(e.instancePath);
    let list = merged.get(p);
    if (!list) {
      merged.set(p, (list = []));
      out.push(p);
    }
    list.push(m.replace(/^must be /, ''));
  }
  const lines = out.map((l) => {
    const alts = merged.get(l);
    return alts ? `${l}: must be ${[...new Set(alts)].join(' or ')}` : l;
  });
  return [...new Set(lines)];
}

/** Parses and validates config text. Exported for tests and `switchyard validate`. */
export function parseLocalConfig(text: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  const sub = substituteEnv(text, env);
  if (!sub.ok) return { ok: false, errors: [sub.error] };
  const doc = parseDocument(sub.text);
  if (doc.errors.length > 0) return { ok: false, errors: doc.errors.map((e) => `yaml: ${e.message}`) };
  const data = (doc.toJS() ?? {}) as unknown;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return { ok: false, errors: ['(root): must be a mapping'] };
  }
  const unsafe = unsafeJsonReason(data);
  if (unsafe !== null) return { ok: false, errors: [`(root): ${unsafe}`] };
  // Warnings describe the file as written, before aliases and defaults fill keys in.
  const warnings = compatWarnings(structuredClone(data) as Record<string, unknown>);
  applyApisixAliases(data as Record<string, unknown>);
  if (!validate(data)) return { ok: false, errors: collectErrors(validate.errors ?? []) };
  normalizeApisixShapes(data as Record<string, unknown>);
  const config = data as LocalConfig;
  // Runs a whole test suite or a bench on one HTTP/1.1 engine without editing its config files.
  const engine = env.SWITCHYARD_HTTP1_ENGINE;
  if (engine === 'node' || engine === 'socket') config.switchyard.http1_engine = engine;
  const client = env.SWITCHYARD_UPSTREAM_CLIENT;
  if (client === 'undici' || client === 'socket') config.switchyard.upstream_http1_client = client;
  return { ok: true, config, file: '', warnings };
}

export async function loadLocalConfig(file: string): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return { ok: false, errors: [`cannot read ${file}: ${(err as Error).message}`] };
  }
  const r = parseLocalConfig(text);
  if (r.ok) r.file = path.resolve(file);
  return r;
}

export function configProvider(conf: LocalConfig): 'etcd' | 'yaml' | 'json' {
  const d = conf.deployment;
  if (d.role === 'data_plane') return d.role_data_plane.config_provider;
  if (d.role === 'control_plane') return 'etcd';
  return d.role_traditional.config_provider;
}

/** The standalone file next to config.yaml (APISIX: conf/apisix.yaml or conf/apisix.json). */
export function standaloneFile(conf: LocalConfig, configFile: string): string {
  if (conf.switchyard.standalone_file) return path.resolve(path.dirname(configFile), conf.switchyard.standalone_file);
  return path.join(path.dirname(configFile), configProvider(conf) === 'json' ? 'apisix.json' : 'apisix.yaml');
}

export function workerCount(conf: LocalConfig): number {
  const w = conf.switchyard.worker_processes;
  return w === 'auto' ? Math.max(1, os.availableParallelism()) : w;
}

export function streamEnabled(conf: LocalConfig): boolean {
  return conf.apisix.proxy_mode !== 'http';
}

export function httpEnabled(conf: LocalConfig): boolean {
  return conf.apisix.proxy_mode !== 'stream';
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

function randomKey(): string {
  let s = '';
  for (let i = 0; i < 32; i++) s += LETTERS[randomInt(LETTERS.length)];
  return s;
}

/**
 * No default admin key: every empty key (or one admin key when none is configured while keys are required)
 * gets 32 random letters, written back into config.yaml (comments kept, atomic rename, owner-only mode).
 * Returns the generated keys so the caller prints them once, each with whether it was saved: a key that comes
 * from a `${{VAR}}` reference, or a config file that cannot be rewritten, keeps the key for this run only.
 */
export interface GeneratedKey {
  name: string;
  key: string;
  /** false: valid for this run only (see `reason`). */
  saved: boolean;
  reason?: string;
}

export async function ensureAdminKey(file: string, conf: LocalConfig): Promise<GeneratedKey[]> {
  const admin = conf.deployment.admin;
  if (conf.deployment.role === 'data_plane' || !admin.admin_key_required) return [];
  const empty = admin.admin_key.flatMap((k, i) => (k.key === '' ? [i] : []));
  if (empty.length === 0 && admin.admin_key.length > 0) return [];
  const text = await readFile(file, 'utf8');
  const doc = parseDocument(text);
  const keys: GeneratedKey[] = [];
  if (empty.length > 0) {
    for (const i of empty) {
      const entry = admin.admin_key[i]!;
      entry.key = randomKey();
      const raw = doc.getIn(['deployment', 'admin', 'admin_key', i, 'key']);
      if (typeof raw === 'string' && raw.includes('${{')) {
        keys.push({ name: entry.name, key: entry.key, saved: false, reason: 'the key comes from an environment variable' });
        continue;
      }
      doc.setIn(['deployment', 'admin', 'admin_key', i, 'key'], entry.key);
      keys.push({ name: entry.name, key: entry.key, saved: true });
    }
  } else {
    const entry = { name: 'admin', key: randomKey(), role: 'admin' as const };
    admin.admin_key.push(entry);
    keys.push({ name: entry.name, key: entry.key, saved: true });
    if (!isMap(doc.getIn(['deployment', 'admin'], true))) {
      if (!isMap(doc.getIn(['deployment'], true))) doc.setIn(['deployment'], doc.createNode({}));
      doc.setIn(['deployment', 'admin'], doc.createNode({}));
    }
    doc.setIn(['deployment', 'admin', 'admin_key'], doc.createNode([entry]));
  }
  if (!keys.some((k) => k.saved)) return keys;
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, doc.toString(), { mode: 0o600 });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    const reason = `cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    for (const k of keys) if (k.saved) Object.assign(k, { saved: false, reason });
  }
  return keys;
}
