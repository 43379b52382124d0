// config.yaml: load, substitute ${{VAR}}, validate against LOCAL_CONFIG_SCHEMA with defaults, and derive the
// settings the composition root needs. Errors carry the key path (apisix.node_listen[0]).
import { randomInt } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parseDocument, isMap } from 'yaml';
import { substituteEnv } from './env-subst.ts';
import { LOCAL_CONFIG_SCHEMA } from './local-schema.ts';

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
    access_log: { enable: boolean; path: string };
  };
  plugins?: string[];
  stream_plugins?: string[];
  plugin_attr: Record<string, Record<string, unknown>>;
  [k: string]: unknown;
}

export type LoadResult = { ok: true; config: LocalConfig; file: string } | { ok: false; errors: string[] };

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
      return `${keyPath(e.instancePath, String(e.params.additionalProperty))}: unknown key`;
    case 'required':
      return `${keyPath(e.instancePath, String(e.params.missingProperty))}: is required`;
    case 'enum':
      return `${keyPath(e.instancePath)}: must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    default:
      return `${keyPath(e.instancePath)}: ${e.message ?? e.keyword}`;
  }
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
  if (!validate(data)) {
    // oneOf failures report every branch; keep the most specific messages, deduplicated.
    const errs = (validate.errors ?? []).filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'if');
    const msgs = [...new Set((errs.length > 0 ? errs : validate.errors ?? []).map(describe))];
    return { ok: false, errors: msgs };
  }
  return { ok: true, config: data as LocalConfig, file: '' };
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
 * No default admin key: an empty key (or no key at all while keys are required) gets 32 random letters,
 * written back into config.yaml (comments kept, atomic rename). Returns the generated key so the caller
 * prints it once; null when nothing was generated.
 */
export async function ensureAdminKey(file: string, conf: LocalConfig): Promise<string | null> {
  const admin = conf.deployment.admin;
  if (conf.deployment.role === 'data_plane' || !admin.admin_key_required) return null;
  const emptyIdx = admin.admin_key.findIndex((k) => k.key === '');
  if (emptyIdx < 0 && admin.admin_key.length > 0) return null;
  const key = randomKey();
  const text = await readFile(file, 'utf8');
  const doc = parseDocument(text);
  if (emptyIdx >= 0) {
    doc.setIn(['deployment', 'admin', 'admin_key', emptyIdx, 'key'], key);
    admin.admin_key[emptyIdx]!.key = key;
  } else {
    const entry = { name: 'admin', key, role: 'admin' as const };
    if (!isMap(doc.getIn(['deployment', 'admin'], true))) doc.setIn(['deployment', 'admin'], doc.createNode({}));
    doc.setIn(['deployment', 'admin', 'admin_key'], doc.createNode([entry]));
    admin.admin_key.push(entry);
  }
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, doc.toString(), { mode: 0o600 });
  await rename(tmp, file);
  return key;
}
