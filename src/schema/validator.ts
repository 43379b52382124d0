// Public validation API: resources (Admin API writes, snapshot builds), single plugin confs, and the schemas
// served by GET /apisix/admin/schema/{name}. Inputs are never mutated: validation runs on a deep clone.
import type { JsonObject, Kind } from '../config/resources.ts';
import { RESOURCE_KINDS } from '../config/resources.ts';
import { cloneJson } from './clone.ts';
import { pluginListSchema } from './core.ts';
import { KIND_RULES } from './kinds.ts';
import {
  checkPluginConfInPlace,
  injectMeta as injectMetaImpl,
  isPlainObject,
  pluginError,
  type CompileVars,
  type PluginSchemaDef,
  type PluginSchemaSource,
  type PluginSchemaType,
  type UnknownPluginSink,
} from './plugins.ts';

export type { CompileVars, PluginSchemaDef, PluginSchemaSource, PluginSchemaType, UnknownPluginSink } from './plugins.ts';

export type ValidationResult = { ok: true; value: JsonObject } | { ok: false; error: string };

export interface ValidateOptions {
  readonly plugins: PluginSchemaSource;
  /** true: the returned value has schema defaults filled in; false: it is a plain clone of the input. */
  readonly withDefaults: boolean;
  /** Compiles route `vars`, `_meta.filter` and stream logger filters; returns an error message or null. */
  readonly compileVars?: CompileVars;
  /** Store id, for kinds whose rules depend on it when the value has no `id` (plugin_metadata, secrets). */
  readonly id?: string;
  /**
   * Data plane (etcd) loads only: a plugin `plugins` does not have is reported here and skipped instead of
   * rejecting the resource. Admin API writes leave it unset ("unknown plugin [name]").
   */
  readonly onUnknownPlugin?: UnknownPluginSink;
}

function luaTypeOf(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  return typeof v === 'object' ? 'table' : typeof v;
}

/**
 * Validates one resource of `kind` like APISIX's Admin API does: schema, then the kind's extra checks, then
 * every plugin conf. Never mutates `value`; never throws for bad input.
 */
export function validateResource(kind: Kind, value: unknown, opts: ValidateOptions): ValidationResult {
  if (!isPlainObject(value)) {
    return { ok: false, error: `invalid configuration: wrong type: expected object, got ${luaTypeOf(value)}` };
  }
  const work = cloneJson(value);
  // Credentials may carry their full standalone id `<username>/credentials/<cid>` (APISIX's standalone
  // layout and what the stores write); the schema's id rule applies to the credential's own part.
  if (kind === 'credentials' && typeof work.id === 'string' && work.id.includes('/credentials/')) {
    work.id = work.id.slice(work.id.lastIndexOf('/') + 1);
  }
  const err = KIND_RULES[kind].check(work, opts);
  if (err !== null) return { ok: false, error: err };
  return { ok: true, value: opts.withDefaults ? work : cloneJson(value) };
}

/**
 * Validates one plugin conf against `def`'s schema for `schemaType` (route schema and consumer schema get
 * `_meta` injected). Error text: `failed to check the configuration of plugin <name> err: <reason>`.
 */
export function validatePluginConf(
  def: PluginSchemaDef,
  name: string,
  conf: unknown,
  schemaType: PluginSchemaType,
  withDefaults: boolean,
  compileVars?: CompileVars,
): ValidationResult {
  if (!isPlainObject(conf)) {
    return { ok: false, error: `invalid plugin conf ${JSON.stringify(conf ?? null)} for plugin [${name}]` };
  }
  const work = cloneJson(conf);
  const failure = checkPluginConfInPlace(def, name, work, schemaType, compileVars);
  if (failure) return { ok: false, error: pluginError(name, failure, false) };
  return { ok: true, value: withDefaults ? work : cloneJson(conf) };
}

const SCHEMA_NAMES = new Map<string, Kind>();
for (const kind of RESOURCE_KINDS) {
  SCHEMA_NAMES.set(kind, kind);
  SCHEMA_NAMES.set(KIND_RULES[kind].schemaName, kind);
}

/**
 * The JSON Schema of a resource kind, by plural kind or singular APISIX name (`route`, `routes`,
 * `stream_route`, ...), or of the stored plugin list (`plugins`). A fresh copy; undefined for unknown names.
 */
export function coreSchema(name: Kind | 'plugins' | (string & {})): JsonObject | undefined {
  if (name === 'plugins') return structuredClone(pluginListSchema);
  const kind = SCHEMA_NAMES.get(name);
  return kind === undefined ? undefined : structuredClone(KIND_RULES[kind].shape);
}

/** A plugin schema with APISIX's injected `_meta` property (cached; the returned object must not be mutated). */
export function injectMeta(schema: JsonObject): JsonObject {
  return injectMetaImpl(schema);
}
