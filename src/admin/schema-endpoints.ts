// `/schema/{kind}`, `/schema/plugins/{name}` and `POST /schema/validate/{kind}` (schema-only check).
import type { Json } from '../config/resources.ts';
import { RESOURCE_KINDS, type Kind } from '../config/resources.ts';
import { checkExpr } from '../router/expr.ts';
import { coreSchema, validateResource } from '../schema/validator.ts';
import { errorReply, NOT_FOUND, reply, type Reply } from './envelope.ts';
import type { AdminContext } from './kind.ts';
import { isObject } from './patch.ts';
import { pluginSchemaReply } from './plugins-endpoints.ts';

export function handleSchema(
  ctx: AdminContext,
  method: string,
  segs: readonly string[],
  query: URLSearchParams,
  body: Json | undefined,
): Reply {
  if (segs[0] === 'validate') {
    if (method !== 'POST' || segs.length !== 2) return NOT_FOUND;
    const kind = segs[1]!;
    if (!(RESOURCE_KINDS as readonly string[]).includes(kind)) return errorReply(404, `Unsupported resource type: ${kind}`);
    if (!isObject(body)) return errorReply(400, 'invalid configuration: wrong type: expected object');
    const res = validateResource(kind as Kind, body, { plugins: ctx.plugins, withDefaults: true, compileVars: checkExpr });
    return res.ok ? reply(200) : errorReply(400, res.error);
  }
  if (method !== 'GET') return NOT_FOUND;
  if (segs[0] === 'plugins') return segs.length === 2 ? pluginSchemaReply(ctx, segs[1], query) : NOT_FOUND;
  if (segs.length !== 1) return NOT_FOUND;
  const schema = coreSchema(segs[0]!);
  return schema ? reply(200, schema) : errorReply(400, `not found schema: ${segs[0]}`);
}
