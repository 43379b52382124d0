// APISIX config.yaml compatibility: keys Switchyard accepts so APISIX's own files load, how the nginx-flavoured
// ones map onto Switchyard settings, and the start-up warnings for keys that change nothing here. A key is
// either honoured, mapped, or reported (never silently ignored); `switchyard validate` prints the same list.

type Raw = Record<string, unknown>;

function isObj(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function getPath(root: Raw, path: readonly string[]): unknown {
  let cur: unknown = root;
  for (const p of path) {
    if (!isObj(cur) || !Object.hasOwn(cur, p)) return undefined;
    cur = cur[p];
  }
  return cur;
}

function ensureObj(root: Raw, key: string): Raw {
  const v = root[key];
  if (isObj(v)) return v;
  const out: Raw = {};
  root[key] = out;
  return out;
}

interface Ignored {
  readonly path: string;
  readonly reason: string;
  /** The value whose behaviour Switchyard has anyway: no warning when the file says exactly this. */
  readonly matches?: unknown;
}

/**
 * APISIX keys accepted without effect. `matches` marks the setting Switchyard behaves like, so a file that
 * states that value is not reported.
 */
const IGNORED: readonly Ignored[] = [
  { path: 'apisix.enable_reuseport', reason: 'workers share listening sockets through node:cluster', matches: true },
  { path: 'apisix.enable_ipv6', reason: 'listeners bind the addresses node_listen names (0.0.0.0 for a bare port); list an IPv6 ip there instead', matches: false },
  { path: 'apisix.match_uri_encoded_slash', reason: '%2F is always decoded before matching (APISIX default)', matches: false },
  { path: 'apisix.max_post_args_readable_size', reason: 'post_arg.* matching reads the body without this cap' },
  { path: 'apisix.enable_resolv_search_opt', reason: 'hostnames resolve through the system resolver, which applies resolv.conf search itself', matches: true },
  { path: 'apisix.disable_sync_configuration_during_start', reason: 'configuration sync always runs', matches: false },
  { path: 'apisix.worker_startup_time_threshold', reason: 'each worker loads the configuration from the store itself' },
  { path: 'apisix.extra_lua_path', reason: 'there is no Lua runtime', matches: '' },
  { path: 'apisix.extra_lua_cpath', reason: 'there is no Lua runtime', matches: '' },
  { path: 'apisix.lua_module_hook', reason: 'there is no Lua runtime' },
  { path: 'apisix.proxy_cache', reason: 'the proxy-cache plugin is not implemented' },
  { path: 'apisix.lru', reason: 'secret lookups are not cached by these settings' },
  { path: 'apisix.tracing', reason: 'request lifecycle tracing is not implemented', matches: false },
  { path: 'apisix.router.http', reason: 'routes always match as radixtree_host_uri', matches: 'radixtree_host_uri' },
  { path: 'apisix.router.ssl', reason: 'certificates are always chosen by SNI', matches: 'radixtree_sni' },
  { path: 'apisix.resolver_timeout', reason: 'the system resolver timeout applies' },
  { path: 'apisix.dns_resolver_valid', reason: 'DNS answers are cached for their own TTL' },
  { path: 'apisix.ssl.ssl_session_tickets', reason: "Node's TLS session ticket default applies" },
  { path: 'apisix.ssl.ssl_trusted_certificate', reason: "upstream TLS verification uses Node's CA store", matches: 'system' },
  { path: 'apisix.proxy_protocol.listen_http_port', reason: 'PROXY protocol is implemented on stream listeners only' },
  { path: 'apisix.proxy_protocol.listen_https_port', reason: 'PROXY protocol is implemented on stream listeners only' },
  { path: 'deployment.etcd.watch_timeout', reason: 'the etcd watch is a long-lived gRPC-gateway stream without this timeout' },
  { path: 'deployment.etcd.resync_delay', reason: 'reconnects use their own backoff' },
  { path: 'deployment.etcd.health_check_timeout', reason: 'etcd endpoints are not health-checked separately' },
  { path: 'deployment.admin.https_admin', reason: 'the Admin API listens on plain HTTP', matches: false },
  { path: 'deployment.admin.admin_api_mtls', reason: 'the Admin API listens on plain HTTP' },
  { path: 'graphql', reason: 'GraphQL route matching is not implemented' },
  { path: 'wasm', reason: 'proxy-wasm plugins are not supported' },
  { path: 'ext-plugin', reason: 'external plugin runners are not supported' },
];

/** Discovery modules APISIX ships; Switchyard implements dns only. */
export const APISIX_DISCOVERY_TYPES: readonly string[] = ['dns', 'consul', 'consul_kv', 'eureka', 'nacos', 'kubernetes', 'tars'];
export const IMPLEMENTED_DISCOVERY: ReadonlySet<string> = new Set(['dns']);

/** nginx_config keys Switchyard maps onto `switchyard:` settings (used only when that setting is not given). */
type MappedKind = 'workers' | 'size' | 'time' | 'bool' | 'string' | 'escape';

const NGINX_MAPPED: readonly { from: readonly string[]; to: readonly string[]; kind: MappedKind }[] = [
  { from: ['worker_processes'], to: ['worker_processes'], kind: 'workers' },
  { from: ['worker_shutdown_timeout'], to: ['limits', 'graceful_shutdown_timeout'], kind: 'time' },
  { from: ['http', 'client_max_body_size'], to: ['limits', 'client_max_body_size'], kind: 'size' },
  { from: ['http', 'keepalive_timeout'], to: ['limits', 'keepalive_timeout'], kind: 'time' },
  { from: ['http', 'client_header_timeout'], to: ['limits', 'client_header_timeout'], kind: 'time' },
  { from: ['http', 'client_body_timeout'], to: ['limits', 'client_body_timeout'], kind: 'time' },
  { from: ['http', 'enable_access_log'], to: ['access_log', 'enable'], kind: 'bool' },
  { from: ['http', 'access_log'], to: ['access_log', 'path'], kind: 'string' },
  { from: ['http', 'access_log_format'], to: ['access_log', 'format'], kind: 'string' },
  { from: ['http', 'access_log_format_escape'], to: ['access_log', 'format_escape'], kind: 'escape' },
  { from: ['http', 'access_log_buffer'], to: ['access_log', 'buffer'], kind: 'size' },
];

/** The value `raw` maps to for `kind`, or null when it cannot be mapped (then it is reported as ignored). */
function mappedValue(kind: MappedKind, raw: unknown): unknown {
  switch (kind) {
    case 'workers':
      return raw === 'auto' ? 'auto' : typeof raw === 'number' && raw > 0 ? raw : null;
    case 'size':
      return nginxSize(raw);
    case 'time': {
      const t = nginxTime(raw);
      return t === null || t === 0 ? null : t;
    }
    case 'bool':
      return typeof raw === 'boolean' ? raw : null;
    case 'string':
      return typeof raw === 'string' && raw !== '' ? raw : null;
    case 'escape':
      return raw === 'default' || raw === 'json' || raw === 'none' ? raw : null;
  }
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
const TIME_UNITS: Record<string, number> = { ms: 0.001, '': 1, s: 1, m: 60, h: 3600, d: 86400 };

/** nginx size syntax: 0, 8k, 1m, 1G. */
export function nginxSize(v: unknown): number | null {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? v : null;
  if (typeof v !== 'string') return null;
  const m = /^\s*(\d+)\s*([kKmMgG]?)\s*$/.exec(v);
  return m ? Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]! : null;
}

/** nginx time syntax in seconds: 60, 60s, 500ms, 1m, 1h. */
export function nginxTime(v: unknown): number | null {
  if (typeof v === 'number') return v >= 0 ? v : null;
  if (typeof v !== 'string') return null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(v);
  return m ? Number(m[1]) * TIME_UNITS[m[2] ?? '']! : null;
}

/**
 * Applies APISIX settings Switchyard honours under other names, on the parsed file before validation, so
 * explicit `switchyard:` keys win and defaults still apply. `enable_dev_mode: true` means one worker, as APISIX.
 */
export function applyApisixAliases(root: Raw): void {
  const sw = isObj(root.switchyard) ? root.switchyard : undefined;
  const nginx = root.nginx_config;
  const mapped: { to: readonly string[]; value: unknown }[] = [];
  if (isObj(nginx)) {
    for (const m of NGINX_MAPPED) {
      const raw = getPath(nginx, m.from);
      if (raw === undefined || getPath(sw ?? {}, m.to) !== undefined) continue;
      const value = mappedValue(m.kind, raw);
      // An unparsable value stays unmapped and is reported with the other nginx_config keys.
      if (value === null) continue;
      // nginx's `access_log off` is APISIX's enable_access_log: false.
      if (m.from[1] === 'access_log' && value === 'off') mapped.push({ to: ['access_log', 'enable'], value: false });
      else mapped.push({ to: m.to, value });
    }
  }
  if (getPath(root, ['apisix', 'enable_dev_mode']) === true && getPath(sw ?? {}, ['worker_processes']) === undefined) {
    const i = mapped.findIndex((m) => m.to[0] === 'worker_processes');
    if (i >= 0) mapped.splice(i, 1);
    mapped.push({ to: ['worker_processes'], value: 1 });
  }
  if (mapped.length === 0) return;
  const target = ensureObj(root, 'switchyard');
  for (const m of mapped) {
    let obj = target;
    for (const p of m.to.slice(0, -1)) obj = ensureObj(obj, p);
    obj[m.to[m.to.length - 1]!] = m.value;
  }
}

/** After validation: shapes APISIX accepts that the rest of Switchyard sees in one form. */
export function normalizeApisixShapes(conf: Raw): void {
  const apisix = conf.apisix as Raw;
  if (typeof apisix.node_listen === 'number') apisix.node_listen = [apisix.node_listen];
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** One line per APISIX key of `root` (the file as written) that has no effect here, with the reason. */
export function compatWarnings(root: Raw): string[] {
  const out: string[] = [];
  for (const ig of IGNORED) {
    const v = getPath(root, ig.path.split('.'));
    if (v === undefined || v === null) continue;
    if (Object.hasOwn(ig, 'matches') && sameJson(v, ig.matches)) continue;
    out.push(`${ig.path}: accepted for APISIX compatibility but not implemented (${ig.reason})`);
  }
  const nginx = root.nginx_config;
  if (isObj(nginx)) {
    const honoured = new Set<string>();
    for (const m of NGINX_MAPPED) {
      const raw = getPath(nginx, m.from);
      if (raw !== undefined && mappedValue(m.kind, raw) !== null) honoured.add(m.from.join('.'));
    }
    const ignored: string[] = [];
    for (const [k, v] of Object.entries(nginx)) {
      if (isObj(v) && k === 'http') {
        for (const sub of Object.keys(v)) if (!honoured.has(`http.${sub}`)) ignored.push(`http.${sub}`);
      } else if (!honoured.has(k)) ignored.push(k);
    }
    if (ignored.length > 0) {
      out.push(
        `nginx_config: accepted for APISIX compatibility; only worker_processes, worker_shutdown_timeout and ` +
          `http.{client_max_body_size,keepalive_timeout,client_header_timeout,client_body_timeout,enable_access_log,` +
          `access_log,access_log_format,access_log_format_escape,access_log_buffer} are honoured ` +
          `(mapped to switchyard.*); not implemented: ${ignored.join(', ')}`,
      );
    }
  }
  const discovery = root.discovery;
  if (isObj(discovery)) {
    for (const type of Object.keys(discovery)) {
      if (IMPLEMENTED_DISCOVERY.has(type)) continue;
      out.push(
        `discovery.${type}: APISIX discovery type not implemented (only dns is); upstreams with ` +
          `discovery_type: ${type} are rejected`,
      );
    }
  }
  const xrpc = getPath(root, ['xrpc', 'protocols']);
  if (Array.isArray(xrpc) && xrpc.length > 0) {
    out.push('xrpc.protocols: accepted for APISIX compatibility; xRPC protocols are chosen by stream routes, this list is not read');
  }
  return out;
}
