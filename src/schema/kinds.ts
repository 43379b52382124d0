// One validation rule per resource kind: its schema plus the extra checks APISIX's admin/*.lua and
// upstream.lua make, in APISIX's order (schema, upstream, plugins, expressions).
import type { JsonObject, Kind } from '../config/resources.ts';
import { compileSchema, runSchema } from './compile.ts';
import {
  consumerGroupSchema,
  consumerSchema,
  credentialSchema,
  globalRuleSchema,
  pluginConfigSchema,
  pluginMetadataShape,
  protoSchema,
  routeSchema,
  serviceSchema,
  sslSchema,
  streamRouteSchema,
} from './core.ts';
import {
  checkPluginConfInPlace,
  checkPluginsInPlace,
  isPlainObject,
  pluginError,
  type CompileVars,
  type PluginSchemaSource,
  type UnknownPluginSink,
} from './plugins.ts';
import { checkProtoContent } from './proto.ts';
import { SECRET_SCHEMAS, secretManagerOf, secretShape } from './secret.ts';
import {
  checkInlineUpstream,
  checkRouteExclusive,
  checkRouteVars,
  checkSslConf,
  checkStreamLoggerFilters,
  checkUpstream,
  fillNodeDefaults,
} from './semantic.ts';
import { upstreamDef } from './upstream.ts';

export interface KindContext {
  readonly plugins: PluginSchemaSource;
  readonly compileVars?: CompileVars;
  /** Store id, used when the value carries no `id` (plugin_metadata: plugin name; secrets: `<manager>/<id>`). */
  readonly id?: string;
  /** Data plane (etcd): plugins the source does not have are reported here and skipped, not rejected. */
  readonly onUnknownPlugin?: UnknownPluginSink;
}

type Step = (value: JsonObject, ctx: KindContext) => string | null;

export interface KindRule {
  /** Singular name used by GET /schema/{name}. */
  readonly schemaName: string;
  /** The schema shown by GET /schema/{name}. */
  readonly shape: JsonObject;
  /** Validates `value` in place (defaults filled in); null when valid, else the APISIX-style message. */
  check(value: JsonObject, ctx: KindContext): string | null;
}

function schemaStep(schema: JsonObject): Step {
  return (value) => {
    const err = runSchema(compileSchema(schema), value);
    return err === null ? null : `invalid configuration: ${err}`;
  };
}

function rule(schemaName: string, shape: JsonObject, steps: Step[]): KindRule {
  return {
    schemaName,
    shape,
    check(value, ctx) {
      for (const step of steps) {
        const err = step(value, ctx);
        if (err !== null) return err;
      }
      return null;
    },
  };
}

const inlineUpstream: Step = (v) => {
  if (isPlainObject(v.upstream)) fillNodeDefaults(v.upstream);
  return checkInlineUpstream(v);
};
const plugins =
  (schemaType: 'route' | 'consumer', stream: boolean, prefix: string): Step =>
  (v, ctx) =>
    checkPluginsInPlace(v, ctx.plugins, schemaType, stream, prefix, ctx.compileVars, ctx.onUnknownPlugin);

const PLUGINS_PREFIX = 'invalid plugins configuration: ';

const authOnly: Step = (v, ctx) => {
  if (!isPlainObject(v.plugins)) return null;
  for (const name of Object.keys(v.plugins)) {
    const def = ctx.plugins.get(name, 'http');
    // Already reported by the plugins step; APISIX checks the plugin type in the Admin API only.
    if (def === undefined && ctx.onUnknownPlugin !== undefined) continue;
    if (def?.type !== 'auth') return 'only supports auth type plugins in consumer credential';
  }
  return null;
};

// The metadata object carries `id` (the plugin name), which the plugin's metadata schema does not declare.
const pluginMetadata: Step = (v, ctx) => {
  const name = typeof v.id === 'string' ? v.id : ctx.id;
  if (name === undefined) return 'missing plugin name';
  const def = ctx.plugins.get(name, 'http') ?? ctx.plugins.get(name, 'stream');
  if (!def) return 'invalid plugin name';
  const id = v.id;
  delete v.id;
  const failure = checkPluginConfInPlace(def, name, v, 'metadata', ctx.compileVars);
  if (id !== undefined) v.id = id;
  if (!failure) return null;
  return failure.wrap ? `invalid configuration: ${failure.reason}` : pluginError(name, failure, false);
};

const secret: Step = (v, ctx) => {
  const id = typeof v.id === 'string' ? v.id : ctx.id;
  const manager = id === undefined ? undefined : secretManagerOf(id);
  if (manager === undefined) return 'missing secret type';
  const schema = SECRET_SCHEMAS[manager];
  if (!schema) return `invalid secret manager: ${manager}`;
  return schemaStep(schema)(v, ctx);
};

export const KIND_RULES: Readonly<Record<Kind, KindRule>> = {
  routes: rule('route', routeSchema, [
    checkRouteExclusive,
    schemaStep(routeSchema),
    inlineUpstream,
    plugins('route', false, ''),
    (v, ctx) => checkRouteVars(v, ctx.compileVars),
  ]),
  services: rule('service', serviceSchema, [schemaStep(serviceSchema), inlineUpstream, plugins('route', false, '')]),
  upstreams: rule('upstream', upstreamDef, [
    schemaStep(upstreamDef),
    (v) => {
      fillNodeDefaults(v);
      return checkUpstream(v);
    },
  ]),
  consumers: rule('consumer', consumerSchema, [
    schemaStep(consumerSchema),
    plugins('consumer', false, PLUGINS_PREFIX),
  ]),
  credentials: rule('credential', credentialSchema, [
    schemaStep(credentialSchema),
    plugins('consumer', false, PLUGINS_PREFIX),
    authOnly,
  ]),
  consumer_groups: rule('consumer_group', consumerGroupSchema, [
    schemaStep(consumerGroupSchema),
    plugins('route', false, ''),
  ]),
  ssls: rule('ssl', sslSchema, [schemaStep(sslSchema), checkSslConf]),
  global_rules: rule('global_rule', globalRuleSchema, [schemaStep(globalRuleSchema), plugins('route', false, '')]),
  plugin_configs: rule('plugin_config', pluginConfigSchema, [
    schemaStep(pluginConfigSchema),
    plugins('route', false, ''),
  ]),
  plugin_metadata: rule('plugin_metadata', pluginMetadataShape, [pluginMetadata]),
  stream_routes: rule('stream_route', streamRouteSchema, [
    schemaStep(streamRouteSchema),
    inlineUpstream,
    plugins('route', true, ''),
    (v, ctx) => checkStreamLoggerFilters(v, ctx.compileVars),
  ]),
  protos: rule('proto', protoSchema, [schemaStep(protoSchema), (v) => checkProtoContent(v.content)]),
  secrets: rule('secret', secretShape, [secret]),
};
