// Plugin conf validation: each conf against its plugin's schema (with `_meta` injected), the plugin's own
// extra check, `_meta.disable` tolerance and `_meta.filter` compilation (APISIX plugin.lua semantics).
import type { Json, JsonObject } from '../config/resources.ts';
import { compileSchema, runSchema } from './compile.ts';
import { metaDef } from './core.ts';

export type PluginSchemaType = 'route' | 'consumer' | 'metadata';

/** The part of a plugin definition validation needs (src/plugin/plugin.ts PluginDef satisfies it). */
export interface PluginSchemaDef {
  readonly schema: JsonObject;
  readonly consumerSchema?: JsonObject;
  readonly metadataSchema?: JsonObject;
  readonly type?: 'auth';
  /** Extra checks beyond the schema; an error message or null. */
  check?(conf: JsonObject, schemaType: PluginSchemaType): string | null;
}

export interface PluginSchemaSource {
  /** `subsystem` is 'stream' for stream_routes plugins; sources without a stream registry may ignore it. */
  get(name: string, subsystem?: 'http' | 'stream'): PluginSchemaDef | undefined;
}

/** Compiles an expression (route `vars`, `_meta.filter`); returns the error message or null. */
export type CompileVars = (v: unknown) => string | null;

export function isPlainObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const injected = new WeakMap<JsonObject, JsonObject>();

/** The plugin schema with APISIX's `_meta` property injected (cached per schema object; never mutates it). */
export function injectMeta(schema: JsonObject): JsonObject {
  let out = injected.get(schema);
  if (!out) {
    const props = isPlainObject(schema.properties) ? schema.properties : {};
    out = { ...schema, properties: { ...props, _meta: metaDef } };
    injected.set(schema, out);
  }
  return out;
}

/** The schema a conf of `schemaType` is checked against, or an error message. */
export function pluginSchemaFor(def: PluginSchemaDef, name: string, schemaType: PluginSchemaType): JsonObject | string {
  if (schemaType === 'metadata') return def.metadataSchema ?? `no metadata schema for plugin ${name}`;
  if (schemaType === 'consumer') return injectMeta(def.consumerSchema ?? def.schema);
  return injectMeta(def.schema);
}

function isDisabled(conf: JsonObject): boolean {
  const meta = conf._meta;
  return isPlainObject(meta) && meta.disable === true;
}

/**
 * Checks `conf` in place (defaults filled in). Returns null or the bare reason (without the
 * "failed to check the configuration of plugin" wrapper, which depends on the caller's subsystem).
 */
export function checkPluginConfInPlace(
  def: PluginSchemaDef,
  name: string,
  conf: Json | undefined,
  schemaType: PluginSchemaType,
  compileVars: CompileVars | undefined,
): { reason: string; wrap: boolean } | null {
  if (!isPlainObject(conf)) {
    return { reason: `invalid plugin conf ${JSON.stringify(conf ?? null)} for plugin [${name}]`, wrap: false };
  }
  const schema = pluginSchemaFor(def, name, schemaType);
  if (typeof schema === 'string') return { reason: schema, wrap: false };
  const err = runSchema(compileSchema(schema), conf) ?? def.check?.(conf, schemaType) ?? null;
  // A disabled plugin never runs, so an invalid conf must not invalidate the object holding it.
  if (err !== null && !isDisabled(conf)) return { reason: err, wrap: true };
  const meta = conf._meta;
  if (schemaType !== 'metadata' && isPlainObject(meta) && meta.filter !== undefined && compileVars) {
    const e = compileVars(meta.filter);
    if (e !== null) return { reason: `failed to validate the 'vars' expression: ${e}`, wrap: false };
  }
  return null;
}

/** Error text of a failed plugin conf, as APISIX words it for the http and stream subsystems. */
export function pluginError(name: string, failure: { reason: string; wrap: boolean }, stream: boolean): string {
  if (!failure.wrap) return failure.reason;
  return stream
    ? `failed to check the configuration of stream plugin [${name}]: ${failure.reason}`
    : `failed to check the configuration of plugin ${name} err: ${failure.reason}`;
}

/**
 * Called for a plugin the source does not have (disabled in config.yaml, or not implemented) instead of
 * rejecting the object: the etcd data plane keeps such objects and skips the plugin, as APISIX's
 * plugin_checker does (skip_disabled_plugin; the Admin API and the yaml/json providers reject them).
 */
export type UnknownPluginSink = (name: string) => void;

/**
 * Checks every entry of `holder.plugins` in place. `prefix` is put before every message (credentials and
 * consumers use "invalid plugins configuration: "). With `onUnknown`, an unknown plugin's conf is reported
 * there and left unchecked.
 */
export function checkPluginsInPlace(
  holder: JsonObject,
  source: PluginSchemaSource,
  schemaType: 'route' | 'consumer',
  stream: boolean,
  prefix: string,
  compileVars: CompileVars | undefined,
  onUnknown?: UnknownPluginSink,
): string | null {
  const plugins = holder.plugins;
  if (!isPlainObject(plugins)) return null;
  for (const name of Object.keys(plugins)) {
    const def = source.get(name, stream ? 'stream' : 'http');
    if (!def) {
      if (onUnknown === undefined) return `${prefix}unknown plugin [${name}]`;
      // APISIX still requires a table here (check_single_plugin_schema tests the type before the lookup).
      if (!isPlainObject(plugins[name])) return `${prefix}invalid plugin conf ${JSON.stringify(plugins[name] ?? null)} for plugin [${name}]`;
      onUnknown(name);
      continue;
    }
    const failure = checkPluginConfInPlace(def, name, plugins[name], schemaType, compileVars);
    if (failure) return prefix + pluginError(name, failure, stream);
  }
  return null;
}
