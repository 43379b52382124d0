// `$env://` and `$secret://` references in plugin confs (APISIX apisix/secret.lua, apisix/core/env.lua),
// resolved when a plugin instance is created (config time), never per request.
// - `$env://NAME` (prefix case-insensitive) is the environment variable NAME; `$env://NAME/sub` decodes NAME
//   as JSON and takes its field `sub`.
// - `$secret://<manager>/<id>/<key>` names the secrets resource `<manager>/<id>` and a key in it.
// Every string anywhere in the conf (nested objects and arrays included) is looked at; the conf is copied,
// never changed, and returned as is when it holds no reference.
// Deviation from APISIX: an unresolvable reference fails the plugin (the chain turns it into a step that
// answers 500) instead of being kept verbatim, since a literal "$env://..." would otherwise become a
// password, key or token anyone could guess. Resolved values never appear in errors or logs.
// Secret managers: APISIX's are vault, aws and gcp, all reached over the network. Creating an instance is
// synchronous here, so their values are fetched before the runtimes are built (secret-vault.ts, awaited by
// the runtime manager) and read from that cache here. Vault is implemented; a reference to an aws or gcp
// secret fails with a message saying that manager is not available.
import type { Json, JsonObject } from '../config/resources.ts';
import { lookupVault, parseVaultRef } from './secret-vault.ts';

export const SECRET_PREFIX = '$secret://';
const ENV_PREFIX = '$ENV://';

/** The secrets resource (a Snapshot satisfies it): stored secret confs by `<manager>/<id>`. */
export interface SecretStore {
  get(kind: 'secrets', id: string): { readonly value: JsonObject } | undefined;
}

export type EnvLookup = (name: string) => string | undefined;

const processEnv: EnvLookup = (name) => process.env[name];

/** APISIX secret.is_secret_ref: a string starting with `$secret://` or (any case) `$env://`. */
export function isSecretRef(v: unknown): v is string {
  if (typeof v !== 'string' || v.charCodeAt(0) !== 0x24 /* $ */) return false;
  return v.startsWith(SECRET_PREFIX) || v.slice(0, ENV_PREFIX.length).toUpperCase() === ENV_PREFIX;
}

/** Whether any string in `v` is a reference. */
export function hasSecretRefs(v: Json | undefined): boolean {
  if (typeof v === 'string') return isSecretRef(v);
  if (Array.isArray(v)) return v.some((x) => hasSecretRefs(x));
  if (v !== null && typeof v === 'object') {
    for (const k of Object.keys(v)) if (hasSecretRefs(v[k])) return true;
  }
  return false;
}

/** Whether any string in `v` is a `$secret://` reference (values that can change while the process runs). */
export function hasManagerRefs(v: Json | undefined): boolean {
  if (typeof v === 'string') return v.startsWith(SECRET_PREFIX);
  if (Array.isArray(v)) return v.some((x) => hasManagerRefs(x));
  if (v !== null && typeof v === 'object') {
    for (const k of Object.keys(v)) if (hasManagerRefs(v[k])) return true;
  }
  return false;
}

type Lookup = { ok: true; value: Json } | { ok: false; error: string };

function fetchEnv(ref: string, env: EnvLookup): Lookup {
  const path = ref.slice(ENV_PREFIX.length);
  const slash = path.indexOf('/');
  const name = slash < 0 ? path : path.slice(0, slash);
  const main = env(name);
  if (main === undefined) return { ok: false, error: `environment variable ${name} is not set` };
  if (slash < 0) return { ok: true, value: main };
  const sub = path.slice(slash + 1);
  if (sub === '') return { ok: true, value: main };
  let decoded: unknown;
  try {
    decoded = JSON.parse(main);
  } catch {
    return { ok: false, error: `environment variable ${name} is not JSON` };
  }
  const field = decoded !== null && typeof decoded === 'object' ? (decoded as Record<string, Json>)[sub] : undefined;
  return field === undefined ? { ok: false, error: `no field ${sub} in environment variable ${name}` } : { ok: true, value: field };
}

function fetchSecret(ref: string, store: SecretStore | undefined): Lookup {
  const path = ref.slice(SECRET_PREFIX.length);
  const i1 = path.indexOf('/');
  if (i1 < 0) return { ok: false, error: 'error format: no secret manager' };
  const i2 = path.indexOf('/', i1 + 1);
  if (i2 < 0) return { ok: false, error: 'error format: no secret conf id' };
  if (i2 === path.length - 1) return { ok: false, error: 'error format: no secret key id' };
  const manager = path.slice(0, i1);
  const id = `${manager}/${path.slice(i1 + 1, i2)}`;
  const secret = store?.get('secrets', id);
  if (secret === undefined) return { ok: false, error: `no secret conf, secret_uri: ${ref}` };
  const vault = parseVaultRef(ref);
  if (vault !== null) return 'error' in vault ? { ok: false, error: vault.error } : lookupVault(secret, vault);
  return {
    ok: false,
    error: `secret manager ${manager} is not available: its values must be fetched before the configuration is built`,
  };
}

function fetchRef(ref: string, store: SecretStore | undefined, env: EnvLookup): Lookup {
  return ref.startsWith(SECRET_PREFIX) ? fetchSecret(ref, store) : fetchEnv(ref, env);
}

function resolve(v: Json, field: string, store: SecretStore | undefined, env: EnvLookup): Json {
  if (typeof v === 'string') {
    if (!isSecretRef(v)) return v;
    const r = fetchRef(v, store, env);
    if (!r.ok) throw new Error(`failed to resolve secret reference ${v} (field ${field}): ${r.error}`);
    return r.value;
  }
  if (Array.isArray(v)) return v.map((x, i) => resolve(x, `${field}[${i}]`, store, env));
  if (v !== null && typeof v === 'object') {
    const out: JsonObject = {};
    for (const k of Object.keys(v)) out[k] = resolve(v[k]!, field === '' ? k : `${field}.${k}`, store, env);
    return out;
  }
  return v;
}

/**
 * The conf with every reference replaced by its value: `conf` itself when it has none, else a copy. Throws
 * (naming the reference and the field, never a value) when one cannot be resolved.
 */
export function resolveSecretRefs(conf: JsonObject, store: SecretStore | undefined, env: EnvLookup = processEnv): JsonObject {
  if (!hasSecretRefs(conf)) return conf;
  return resolve(conf, '', store, env) as JsonObject;
}
