// `/plugins/list`, `/plugins/{name}`, `/plugins?all=true` (deprecated dump) (APISIX admin/plugins.lua) and
// `PUT /plugins/reload` (admin/init.lua): `reload` re-reads config.yaml in every process of the node and, on
// etcd, writes the plugin list for the nodes without an Admin API (src/main.ts, src/config/plugin-list.ts); it
// rejects when nothing could be applied. Plugin schemas are answered with the injected `_meta`.
import type { JsonObject } from '../config/resources.ts';
import type { PluginDef } from '../plugin/plugin.ts';
import { injectMeta } from '../schema/validator.ts';
import { errorReply, NOT_FOUND, rawReply, reply, type Reply } from './envelope.ts';
import type { AdminContext } from './kind.ts';

type Subsystem = 'http' | 'stream';

function subsystemOf(query: URLSearchParams): Subsystem | Reply {
  const s = query.get('subsystem') ?? 'http';
  return s === 'http' || s === 'stream' ? s : errorReply(400, `unsupported subsystem: ${s}`);
}

function describe(def: PluginDef): JsonObject {
  const out: JsonObject = { version: def.version, priority: def.priority, schema: injectMeta(def.schema) };
  if (def.consumerSchema) out.consumer_schema = def.consumerSchema;
  if (def.metadataSchema) out.metadata_schema = def.metadataSchema;
  if (def.type) out.type = def.type;
  if (def.scope) out.scope = def.scope;
  return out;
}

/** The schema answered for `GET /plugins/{name}` and `GET /schema/plugins/{name}`. */
export function pluginSchemaReply(ctx: AdminContext, name: string | undefined, query: URLSearchParams): Reply {
  const subsystem = subsystemOf(query);
  if (typeof subsystem !== 'string') return subsystem;
  const def = name === undefined ? undefined : ctx.plugins.get(name, subsystem);
  if (!def) return errorReply(404, `plugin not found in subsystem ${subsystem}`);
  const type = query.get('schema_type');
  const schema =
    type === 'consumer' ? def.consumerSchema : type === 'metadata' ? def.metadataSchema : injectMeta(def.schema);
  return schema ? reply(200, schema) : errorReply(400, 'not found schema');
}

export async function handlePlugins(
  ctx: AdminContext,
  reload: () => Promise<void>,
  method: string,
  segs: readonly string[],
  query: URLSearchParams,
): Promise<Reply> {
  if (segs[0] === 'reload' && segs.length === 1) {
    if (method !== 'PUT') {
      return errorReply(405, `please use PUT method to reload the plugins, ${method} method is not allowed.`);
    }
    try {
      await reload();
    } catch (err) {
      ctx.logger.error({ err: (err as Error).message }, 'plugin reload failed');
      return errorReply(500, `failed to reload plugins: ${(err as Error).message}`);
    }
    return rawReply(200, 'done');
  }
  if (method !== 'GET' || segs.length > 1) return NOT_FOUND;
  const subsystem = subsystemOf(query);
  if (typeof subsystem !== 'string') return subsystem;
  if (segs[0] === 'list') return reply(200, ctx.plugins.all(subsystem).map((p) => p.name));
  if (segs.length === 0 && query.get('all') === 'true') {
    const dump: JsonObject = {};
    for (const def of ctx.plugins.all(subsystem)) dump[def.name] = describe(def);
    return reply(200, dump);
  }
  return pluginSchemaReply(ctx, segs[0], query);
}
