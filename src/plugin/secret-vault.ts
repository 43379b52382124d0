// HashiCorp Vault secret manager for `$secret://vault/<id>/<path>/<key>` references (APISIX
// apisix/secret/vault.lua). Plugin instances are created synchronously, so every Vault value a snapshot
// references is fetched before the runtimes are built from it (prefetchVaultSecrets, awaited by the runtime
// manager before the swap) and read from this cache when the chain resolves the reference.
//
// Request, as APISIX: GET {uri}/v1/{prefix}/{path} with X-Vault-Token (the token may itself be an
// `$env://` reference) and X-Vault-Namespace when `namespace` is set; the value is field <key> of the
// answer's `data`. A KV v2 mount is named by a prefix holding its `data/` segment (`kv/data/apisix` reads
// GET /v1/kv/data/apisix/<path>, the KV v2 read API); its answer nests the fields in `data.data` beside
// `data.metadata`, and both shapes are read.
//
// Cache: per stored secrets object (its SnapshotItem, the same object while the secret is unchanged) and path.
// A changed secrets object (a PUT, even with the same body) is a new item, so its paths are fetched again and
// the chains that reference secrets are rebuilt (http-runtime). A failed fetch is cached as a failure (the
// references fail closed) until the secrets object changes. Tokens and values never reach errors or logs.
import type { Json, JsonObject } from '../config/resources.ts';
import type { Snapshot, SnapshotItem } from '../config/snapshot.ts';

const VAULT_PREFIX = '$secret://vault/';
const FETCH_TIMEOUT_MS = 5000;
const MAX_BODY_BYTES = 1 << 20;

type Fetched = { ok: true; data: JsonObject } | { ok: false; error: string };

const cache = new WeakMap<object, Map<string, Fetched>>();
const pending = new WeakMap<object, Map<string, Promise<void>>>();
/** The Vault references of each stored object carrying plugin confs (the same object while unchanged). */
const refsOf = new WeakMap<SnapshotItem, readonly string[]>();
/** The references of a kind's whole item list: an unchanged kind keeps its list, so a rebuild skips it. */
const refsOfList = new WeakMap<readonly SnapshotItem[], readonly string[]>();

/** Kinds whose objects carry plugin confs. */
const PLUGIN_KINDS = ['routes', 'services', 'plugin_configs', 'global_rules', 'consumers', 'consumer_groups', 'credentials', 'stream_routes'] as const;

/** A parsed `$secret://vault/<id>/<path>/<key>`: the secrets object id, the Vault path and the field. */
export interface VaultRef {
  readonly secretId: string;
  readonly path: string;
  readonly key: string;
}

/** Parses `ref` (after `$secret://`: `vault/<id>/<path...>/<key>`); null when it is not a vault reference. */
export function parseVaultRef(ref: string): VaultRef | { error: string } | null {
  if (!ref.startsWith(VAULT_PREFIX)) return null;
  const rest = ref.slice(VAULT_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return { error: 'error format: no secret conf id' };
  const keyPath = rest.slice(slash + 1);
  const last = keyPath.lastIndexOf('/');
  if (last <= 0) return { error: `error key format, key: ${keyPath}` };
  const key = keyPath.slice(last + 1);
  if (key === '') return { error: `error key format, key: ${keyPath}` };
  return { secretId: `vault/${rest.slice(0, slash)}`, path: keyPath.slice(0, last), key };
}

function collect(v: Json | undefined, out: string[]): void {
  if (typeof v === 'string') {
    if (v.startsWith(VAULT_PREFIX)) out.push(v);
  } else if (Array.isArray(v)) {
    for (const x of v) collect(x, out);
  } else if (v !== null && typeof v === 'object') {
    for (const k of Object.keys(v)) collect(v[k], out);
  }
}

function listRefs(list: readonly SnapshotItem[]): readonly string[] {
  let refs = refsOfList.get(list);
  if (refs === undefined) {
    const out: string[] = [];
    for (const item of list) for (const r of vaultRefs(item)) out.push(r);
    refs = out;
    refsOfList.set(list, refs);
  }
  return refs;
}

function vaultRefs(item: SnapshotItem): readonly string[] {
  let refs = refsOf.get(item);
  if (refs === undefined) {
    const out: string[] = [];
    collect(item.value, out);
    refs = out;
    refsOf.set(item, refs);
  }
  return refs;
}

/**
 * The value of a parsed reference from the cache filled by prefetchVaultSecrets for the secrets object
 * `secret` (as returned by the snapshot).
 */
export function lookupVault(secret: object, ref: VaultRef): { ok: true; value: Json } | { ok: false; error: string } {
  const got = cache.get(secret)?.get(ref.path);
  if (got === undefined) return { ok: false, error: `vault path ${ref.path} of ${ref.secretId} was not fetched` };
  if (!got.ok) return got;
  const value = got.data[ref.key];
  if (value === undefined || value === null) return { ok: false, error: `no field ${ref.key} at vault path ${ref.path} of ${ref.secretId}` };
  return { ok: true, value };
}

function joinUrl(uri: string, prefix: string, path: string): string {
  const tail = `/v1/${prefix}/${path}`.replace(/\/{2,}/g, '/');
  return uri.replace(/\/+$/, '') + tail;
}

function envToken(token: string): string | undefined {
  if (token.slice(0, 7).toUpperCase() !== '$ENV://') return token;
  return process.env[token.slice(7)];
}

/** One GET to Vault; never throws, and its errors name the secret and path only. */
async function fetchPath(conf: JsonObject, secretId: string, path: string): Promise<Fetched> {
  const where = `vault path ${path} of ${secretId}`;
  const token = typeof conf.token === 'string' ? envToken(conf.token) : undefined;
  if (token === undefined || token === '') return { ok: false, error: `${where}: no token` };
  const headers: Record<string, string> = { 'x-vault-token': token };
  if (typeof conf.namespace === 'string' && conf.namespace !== '') headers['x-vault-namespace'] = conf.namespace;
  try {
    const res = await fetch(joinUrl(String(conf.uri), String(conf.prefix ?? ''), path), {
      headers,
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
    const text = await res.text();
    if (res.status !== 200) return { ok: false, error: `${where}: vault answered ${res.status}` };
    if (text.length > MAX_BODY_BYTES) return { ok: false, error: `${where}: answer too large` };
    const body = JSON.parse(text) as { data?: unknown };
    const data = body?.data;
    if (data === null || typeof data !== 'object' || Array.isArray(data)) return { ok: false, error: `${where}: answer has no data` };
    const d = data as JsonObject;
    const nested = d.data;
    // KV v2 read: { data: { data: {...fields}, metadata: {...} } }.
    if (nested !== null && typeof nested === 'object' && !Array.isArray(nested) && typeof d.metadata === 'object') {
      return { ok: true, data: nested as JsonObject };
    }
    return { ok: true, data: d };
  } catch (err) {
    const name = (err as Error).name === 'TimeoutError' ? 'timed out' : 'request failed';
    return { ok: false, error: `${where}: ${name}` };
  }
}

/**
 * Fetches every Vault path `snapshot`'s plugin confs reference that is not cached for its secrets object yet.
 * Returns null when nothing is missing (the usual case: no Vault reference, or all fetched), else a promise
 * that settles (never rejects) once every missing path is fetched or failed.
 */
export function prefetchVaultSecrets(snapshot: Snapshot): Promise<void> | null {
  let waits: Promise<void>[] | null = null;
  for (const kind of PLUGIN_KINDS) {
    for (const ref of listRefs(snapshot.list(kind))) {
      const parsed = parseVaultRef(ref);
      if (parsed === null || 'error' in parsed) continue;
      const secret = snapshot.get('secrets', parsed.secretId);
      if (secret === undefined) continue;
      let fetched = cache.get(secret);
      if (fetched === undefined) cache.set(secret, (fetched = new Map()));
      if (fetched.has(parsed.path)) continue;
      let inFlight = pending.get(secret);
      if (inFlight === undefined) pending.set(secret, (inFlight = new Map()));
      let p = inFlight.get(parsed.path);
      if (p === undefined) {
        const into = fetched;
        const path = parsed.path;
        const flights = inFlight;
        p = fetchPath(secret.value, parsed.secretId, path).then((r) => {
          into.set(path, r);
          flights.delete(path);
        });
        inFlight.set(path, p);
      }
      (waits ??= []).push(p);
    }
  }
  return waits === null ? null : Promise.all(waits).then(() => undefined);
}
