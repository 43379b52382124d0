// APISIX-compatible encryption at rest of secret fields, so one etcd prefix can be shared with APISIX.
//
// Format (APISIX apisix/ssl.lua + plugin.lua encrypt_conf/decrypt_conf): a keyring entry of 16 bytes is an
// AES-128-CBC key, one of 32 bytes an AES-256-CBC key; the IV is the entry's first 16 bytes (the whole entry for
// AES-128); PKCS#7 padding; the ciphertext is stored base64 (standard alphabet, padded). The first entry
// encrypts, every entry is tried in order to decrypt. A value no entry decrypts (plaintext from an older writer,
// a `$secret://` reference, the wrong keyring) is kept as it is, never rejected.
//
// What is encrypted:
//  - ssls `key` and every `keys[]`; upstreams `tls.client_key`, and the inline `upstream.tls.client_key` of
//    routes, services and stream routes. These are only encrypted when they hold PEM text (start with "---"),
//    and decrypted unless they do, independent of enable_encrypt_fields.
//  - plugin conf fields listed in the plugin's encrypt_fields (a dotted path of any depth, an array on the way
//    standing for each of its objects), inside `plugins` of consumers and credentials (consumer schema), of
//    routes, services, global rules, plugin configs and consumer groups (plugin schema), and in
//    plugin_metadata (metadata schema); only when enable_encrypt_fields is on (APISIX default). The field's
//    string is encrypted, or each string of an array, or each string value of a map (elasticsearch-logger and
//    loki-logger `headers`): APISIX 3.18 plugin.lua process_encrypt_field.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { Json, JsonObject, Kind } from './resources.ts';

export type PluginSchemaType = 'route' | 'consumer' | 'metadata';

/**
 * The encrypt_fields of a plugin for one schema type, or undefined when the caller does not know the plugin
 * (the built-in APISIX table is used then).
 */
export type EncryptFieldsLookup = (plugin: string, schemaType: PluginSchemaType) => readonly string[] | undefined;

/** The two keys APISIX ships in apisix/cli/config.lua (`apisix.data_encryption.keyring`). */
export const APISIX_DEFAULT_KEYRING: readonly string[] = Object.freeze(['qeddd145sfvddff3', 'edd1c9f0985e76a2']);

type FieldTable = Readonly<Record<string, readonly string[]>>;

/**
 * APISIX's encrypt_fields for plugins, so values APISIX wrote for plugins Switchyard does not ship (or ships
 * without declaring encryptFields) still round-trip. Consumer-schema lookups fall back to the plugin schema,
 * as APISIX does for plugins without a consumer_schema.
 */
export const APISIX_ENCRYPT_FIELDS: Readonly<Record<PluginSchemaType, FieldTable>> = Object.freeze({
  consumer: Object.freeze({
    'key-auth': ['key'],
    'basic-auth': ['password'],
    'jwt-auth': ['secret', 'private_key'],
    'hmac-auth': ['secret_key'],
  }),
  route: Object.freeze({
    csrf: ['key'],
    'openid-connect': [
      'client_secret',
      'client_rsa_private_key',
      'dpop.private_key',
      'session.secret',
      'session.redis.password',
      'backchannel_logout.redis.password',
    ],
    'authz-keycloak': ['client_secret'],
    'authz-casdoor': ['client_secret'],
    'limit-count': ['redis_password', 'sentinel_password'],
    'clickhouse-logger': ['password'],
    'elasticsearch-logger': ['auth.password', 'headers'],
    'loki-logger': ['headers'],
    'http-logger': ['auth_header'],
    'sls-logger': ['access_key_secret'],
    'tencent-cloud-cls': ['secret_key'],
    'rocketmq-logger': ['secret_key'],
  }),
  metadata: Object.freeze({
    'error-log-logger': ['clickhouse.password'],
  }),
});

/** The part of a PluginDef the codec reads. */
export interface EncryptFieldsSource {
  readonly consumerSchema?: unknown;
  readonly encryptFields?: readonly string[];
  readonly routeEncryptFields?: readonly string[];
}

/**
 * Adapts a plugin registry (`(name) => registry.known(name)`) to an EncryptFieldsLookup. A PluginDef's
 * encryptFields are those of the schema consumer confs are checked against (its consumerSchema when it has
 * one, else its schema). A plugin with a consumerSchema declares its route conf's secrets apart, in
 * routeEncryptFields (hmac-auth's replay Redis passwords); without them its route conf has none. Metadata
 * fields come from the built-in table.
 */
export function lookupFromPluginDefs(known: (name: string) => EncryptFieldsSource | undefined): EncryptFieldsLookup {
  return (name, schemaType) => {
    const def = known(name);
    if (!def || schemaType === 'metadata') return undefined;
    if (schemaType === 'route' && def.consumerSchema !== undefined) return def.routeEncryptFields ?? (def.encryptFields === undefined ? undefined : []);
    return def.encryptFields;
  };
}

interface AesKey {
  readonly algorithm: 'aes-128-cbc' | 'aes-256-cbc';
  readonly key: Buffer;
  readonly iv: Buffer;
}

/** A keyring entry as an AES key; throws for lengths APISIX cannot use (it silently drops them). */
function aesKey(entry: string, where: string): AesKey {
  const key = Buffer.from(entry, 'utf8');
  if (key.length !== 16 && key.length !== 32) {
    throw new Error(`${where}: a key must be 16 bytes (AES-128) or 32 bytes (AES-256), got ${key.length}`);
  }
  return { algorithm: key.length === 16 ? 'aes-128-cbc' : 'aes-256-cbc', key, iv: key.subarray(0, 16) };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function encryptWith(k: AesKey, plaintext: string): string {
  const c = createCipheriv(k.algorithm, k.key, k.iv);
  return Buffer.concat([c.update(plaintext, 'utf8'), c.final()]).toString('base64');
}

/**
 * The plaintext, or undefined when no key decrypts `value`. A wrong key passes the PKCS#7 check about once in
 * 256 tries, so the result must also be valid UTF-8 (the stored values are JSON strings).
 */
function decryptWith(keys: readonly AesKey[], value: string): string | undefined {
  if (keys.length === 0 || value.length < 24 || !BASE64.test(value)) return undefined;
  const data = Buffer.from(value, 'base64');
  if (data.length % 16 !== 0) return undefined;
  for (const k of keys) {
    let out: Buffer;
    try {
      const d = createDecipheriv(k.algorithm, k.key, k.iv);
      out = Buffer.concat([d.update(data), d.final()]);
    } catch {
      continue;
    }
    try {
      return utf8.decode(out);
    } catch {
      continue;
    }
  }
  return undefined;
}

export interface FieldCodecOptions {
  /** `apisix.data_encryption.keyring`; the first entry encrypts. Empty: nothing is encrypted or decrypted. */
  keyring: readonly string[];
  /** `apisix.data_encryption.enable_encrypt_fields` (APISIX default true): plugin encrypt_fields. */
  encryptFields: boolean;
  /** Legacy `apisix.ssl.key_encrypt_salt` (APISIX < 3.8): extra keys tried last when decrypting SSL keys. */
  legacySslKeys?: readonly string[];
  /** Keys tried last when decrypting anything, never used to encrypt (a keyring that was replaced). */
  decryptOnly?: readonly string[];
  /** Plugin encrypt_fields; falls back to APISIX_ENCRYPT_FIELDS. */
  lookup?: EncryptFieldsLookup;
}

type Transform = (s: string) => string;

/** Where a PEM private key sits in a resource (slash-free property paths; arrays map every element). */
const PEM_PATHS: Partial<Record<Kind, readonly (readonly string[])[]>> = {
  ssls: [['key'], ['keys']],
  upstreams: [['tls', 'client_key']],
  routes: [['upstream', 'tls', 'client_key']],
  services: [['upstream', 'tls', 'client_key']],
  stream_routes: [['upstream', 'tls', 'client_key']],
};

/** Which schema the `plugins` of a resource are checked against (stream routes: none is encrypted). */
const PLUGIN_SCHEMA: Partial<Record<Kind, PluginSchemaType>> = {
  consumers: 'consumer',
  credentials: 'consumer',
  routes: 'route',
  services: 'route',
  global_rules: 'route',
  plugin_configs: 'route',
  consumer_groups: 'route',
};

function isObject(v: Json | undefined): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Applies `fn` to the string at `path` below `obj` (every element when it is an array of strings), copying
 * only the objects on the way. Returns `obj` itself when nothing changed.
 */
function mapPath(obj: JsonObject, path: readonly string[], depth: number, fn: Transform): JsonObject {
  const name = path[depth]!;
  const cur = obj[name];
  let next: Json | undefined = cur;
  if (depth === path.length - 1) {
    if (typeof cur === 'string') next = fn(cur);
    else if (Array.isArray(cur)) {
      const arr = cur.map((e) => (typeof e === 'string' ? fn(e) : e));
      if (arr.some((e, i) => e !== cur[i])) next = arr;
    }
  } else if (isObject(cur)) {
    next = mapPath(cur, path, depth + 1, fn);
  }
  return next === cur ? obj : { ...obj, [name]: next as Json };
}

/** `arr` with `fn` applied to each element, or `arr` itself when no element changed. */
function mapElements(arr: Json[], fn: (e: Json) => Json): Json[] {
  const out = arr.map(fn);
  return out.some((e, i) => e !== arr[i]) ? out : arr;
}

/** Each string value of a map through `fn`; the map itself when none changed. */
function mapStringValues(map: JsonObject, fn: Transform): JsonObject {
  let out: JsonObject | null = null;
  for (const k of Object.keys(map)) {
    const v = map[k];
    if (typeof v !== 'string') continue;
    const n = fn(v);
    if (n !== v) (out ??= { ...map })[k] = n;
  }
  return out ?? map;
}

/**
 * APISIX's encrypt_fields rule for the path `path[depth..]` below `conf`: an array on the way applies the rest
 * of the path to each of its objects; at the end a string, each string of an array, or each string value of
 * a map goes through `fn`. Copies only what changes.
 */
function mapField(conf: JsonObject, path: readonly string[], depth: number, fn: Transform): JsonObject {
  const name = path[depth]!;
  const cur = conf[name];
  if (cur === undefined || cur === null || (typeof cur !== 'object' && typeof cur !== 'string')) return conf;
  let next: Json = cur;
  if (depth === path.length - 1) {
    if (typeof cur === 'string') next = fn(cur);
    else if (Array.isArray(cur)) next = mapElements(cur, (e) => (typeof e === 'string' ? fn(e) : e));
    else next = mapStringValues(cur, fn);
  } else if (Array.isArray(cur)) {
    next = mapElements(cur, (e) => (isObject(e) ? mapField(e, path, depth + 1, fn) : e));
  } else if (isObject(cur)) {
    next = mapField(cur, path, depth + 1, fn);
  }
  return next === cur ? conf : { ...conf, [name]: next };
}

/**
 * Encrypts (encode, before a write) and decrypts (decode, after a read) the secret fields of resource values.
 * Never mutates its input: changed objects are copied along the changed paths; when nothing changes the input
 * itself is returned.
 */
export class FieldCodec {
  readonly #dataKeys: readonly AesKey[];
  readonly #dataDecrypt: readonly AesKey[];
  readonly #sslKeys: readonly AesKey[];
  readonly #fields: boolean;
  readonly #lookup: EncryptFieldsLookup | undefined;
  readonly #encryptPem: Transform;
  readonly #decryptPem: Transform;
  readonly #encryptField: Transform;
  readonly #decryptField: Transform;
  /** The encrypting key is one of APISIX's published defaults: obfuscation, not secrecy. */
  readonly publicKeyring: boolean;

  constructor(opts: FieldCodecOptions) {
    this.#dataKeys = opts.keyring.map((k, i) => aesKey(k, `apisix.data_encryption.keyring[${i}]`));
    const legacy = (opts.legacySslKeys ?? []).map((k, i) => aesKey(k, `apisix.ssl.key_encrypt_salt[${i}]`));
    const old = (opts.decryptOnly ?? []).map((k, i) => aesKey(k, `decryption key ${i}`));
    this.#dataDecrypt = [...this.#dataKeys, ...old];
    this.#sslKeys = [...this.#dataKeys, ...legacy, ...old];
    this.#fields = opts.encryptFields;
    this.#lookup = opts.lookup;
    this.publicKeyring = opts.keyring.length > 0 && APISIX_DEFAULT_KEYRING.includes(opts.keyring[0]!);
    const sslWriter = this.#dataKeys[0] ?? legacy[0];
    const dataWriter = this.#dataKeys[0];
    this.#encryptPem = (s) => (sslWriter && s.startsWith('---') ? encryptWith(sslWriter, s) : s);
    this.#decryptPem = (s) => (s.startsWith('---') ? s : (decryptWith(this.#sslKeys, s) ?? s));
    this.#encryptField = (s) => (dataWriter ? encryptWith(dataWriter, s) : s);
    this.#decryptField = (s) => decryptWith(this.#dataDecrypt, s) ?? s;
  }

  /** Whether encode()/decode() can change anything at all (a codec without keys cannot). */
  get active(): boolean {
    return this.#sslKeys.length > 0;
  }

  /**
   * The value as it is stored: secret fields encrypted with the first keyring entry. `id` (the key suffix)
   * names the plugin of a plugin_metadata value; without it the value's own `id` is used.
   */
  encode(kind: Kind, value: JsonObject, id?: string): JsonObject {
    if (!this.active) return value;
    return this.#apply(kind, value, id, this.#encryptPem, this.#encryptField);
  }

  /** The value as the gateway uses it: secret fields decrypted when some keyring entry can. */
  decode(kind: Kind, value: JsonObject, id?: string): JsonObject {
    if (!this.active) return value;
    return this.#apply(kind, value, id, this.#decryptPem, this.#decryptField);
  }

  /** Encrypts one plugin-field string with the first keyring entry (unchanged without a keyring). */
  encryptString(plaintext: string): string {
    return this.#encryptField(plaintext);
  }

  /** Decrypts one plugin-field string, or returns it unchanged when no keyring entry decrypts it. */
  decryptString(value: string): string {
    return this.#decryptField(value);
  }

  #apply(kind: Kind, value: JsonObject, id: string | undefined, pem: Transform, field: Transform): JsonObject {
    let out = value;
    for (const path of PEM_PATHS[kind] ?? []) out = mapPath(out, path, 0, pem);
    if (!this.#fields || this.#dataDecrypt.length === 0) return out;
    if (kind === 'plugin_metadata') {
      const name = id ?? (typeof out.id === 'string' ? out.id : undefined);
      return name ? this.#mapConf(name, 'metadata', out, field) : out;
    }
    const schemaType = PLUGIN_SCHEMA[kind];
    const plugins = out.plugins;
    if (!schemaType || !isObject(plugins)) return out;
    let changed: JsonObject | null = null;
    for (const name of Object.keys(plugins)) {
      const conf = plugins[name];
      if (!isObject(conf)) continue;
      const next = this.#mapConf(name, schemaType, conf, field);
      if (next !== conf) (changed ??= { ...plugins })[name] = next;
    }
    return changed ? { ...out, plugins: changed } : out;
  }

  #mapConf(name: string, schemaType: PluginSchemaType, conf: JsonObject, fn: Transform): JsonObject {
    const fields = this.#fieldsOf(name, schemaType);
    let out = conf;
    for (const f of fields) out = mapField(out, f.split('.'), 0, fn);
    return out;
  }

  #fieldsOf(name: string, schemaType: PluginSchemaType): readonly string[] {
    const declared = this.#lookup?.(name, schemaType);
    if (declared !== undefined) return declared;
    const t = APISIX_ENCRYPT_FIELDS;
    if (schemaType === 'consumer') return t.consumer[name] ?? t.route[name] ?? [];
    return t[schemaType][name] ?? [];
  }
}

function keyList(v: unknown): string[] | undefined {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((e): e is string => typeof e === 'string');
  return undefined;
}

/**
 * The codec of the etcd config store from config.yaml's `apisix` section, with
 * APISIX's defaults (enable_encrypt_fields true, the default keyring). Throws on keyring entries of unusable
 * length. The standalone file store uses fileStoreCodecFromConfig; for it the CLI writes a generated keyring
 * into config.yaml first (keyring.ts ensureDataKeyring), since APISIX's default keys are public.
 */
export function fieldCodecFromConfig(apisix: unknown, lookup?: EncryptFieldsLookup): FieldCodec {
  const a = (apisix ?? {}) as { data_encryption?: { enable_encrypt_fields?: boolean; keyring?: unknown }; ssl?: { key_encrypt_salt?: unknown } };
  const de = a.data_encryption ?? {};
  return new FieldCodec({
    keyring: keyList(de.keyring) ?? [...APISIX_DEFAULT_KEYRING],
    encryptFields: de.enable_encrypt_fields !== false,
    legacySslKeys: keyList(a.ssl?.key_encrypt_salt) ?? [],
    lookup,
  });
}

/**
 * The codec of the standalone file store: as fieldCodecFromConfig, and APISIX's default keys are also tried
 * when decrypting, so a file once written under the default keyring still loads after a keyring was
 * generated or configured (those keys are public: trying them costs no secrecy).
 */
export function fileStoreCodecFromConfig(apisix: unknown, lookup?: EncryptFieldsLookup): FieldCodec {
  const a = (apisix ?? {}) as { data_encryption?: { enable_encrypt_fields?: boolean; keyring?: unknown }; ssl?: { key_encrypt_salt?: unknown } };
  const de = a.data_encryption ?? {};
  const keyring = keyList(de.keyring) ?? [...APISIX_DEFAULT_KEYRING];
  return new FieldCodec({
    keyring,
    encryptFields: de.enable_encrypt_fields !== false,
    legacySslKeys: keyList(a.ssl?.key_encrypt_salt) ?? [],
    decryptOnly: APISIX_DEFAULT_KEYRING.filter((k) => !keyring.includes(k)),
    lookup,
  });
}
