// Generic CRUD of the Admin API (APISIX admin/resource.lua semantics) driven by a KindSpec.
// Nothing is written unless every check passed; each write is a single ConfigStore call.
import type { Json, JsonObject } from '../config/resources.ts';
import { KIND_SINGULAR } from '../config/resources.ts';
import { checkExpr } from '../router/expr.ts';
import { validateResource } from '../schema/validator.ts';
import { deleted, errorReply, isReply, KEY_NOT_FOUND, node, NOT_FOUND, storeFailure, written, type Reply } from './envelope.ts';
import type { AdminContext, KindSpec, Method, Target } from './kind.ts';
import { listReply } from './list.ts';
import { isObject, mergePatch, subPathPatch } from './patch.ts';

export interface ResourceRequest {
  readonly method: Method;
  /** URL segments after the resource name. */
  readonly segs: readonly string[];
  readonly query: URLSearchParams;
  /** Parsed JSON body; undefined when the body was empty. */
  readonly body: Json | undefined;
  readonly ttl: number | undefined;
}

const FORBIDDEN = ['create_time', 'update_time'] as const;

/** APISIX refuses client-sent timestamps on PUT/POST (top level, `upstream.`, `plugins.`). */
function forbiddenProperty(body: JsonObject): string | null {
  for (const p of FORBIDDEN) if (body[p] !== undefined) return `the property is forbidden:  ${p}`;
  for (const nest of ['upstream', 'plugins'] as const) {
    const sub = body[nest];
    if (!isObject(sub)) continue;
    for (const p of FORBIDDEN) if (sub[p] !== undefined) return `the property is forbidden:  ${nest}.${p}`;
  }
  return null;
}

function nowSec(): number {
  return Math.floor(Date.now() / 1000);
}

function defaultParse(segs: readonly string[]): Target {
  return { scope: '', id: segs[0], subPath: segs.slice(1) };
}

/** APISIX's generic id rules (`check_conf` in admin/resource.lua). */
export function genericAssignId(
  spec: KindSpec,
  target: Target,
  value: JsonObject,
  need: boolean,
): { storeId: string } | { error: string } {
  const s = KIND_SINGULAR[spec.kind];
  const bodyId = value.id;
  const hasBodyId = bodyId !== undefined && bodyId !== null;
  if (!need) {
    if (target.id !== undefined || hasBodyId) return { error: `wrong ${s} id, do not need it` };
    return { storeId: '' };
  }
  const id = target.id ?? (hasBodyId ? bodyId : undefined);
  if (id === undefined) return { error: `missing ${s} id` };
  if (hasBodyId && String(bodyId) !== String(id)) return { error: `wrong ${s} id` };
  if (target.id !== undefined) value.id = target.id;
  return { storeId: target.scope + String(id) };
}

function assign(spec: KindSpec, target: Target, value: JsonObject, need: boolean): { storeId: string } | Reply {
  const r = spec.assignId ? spec.assignId(target, value, need) : genericAssignId(spec, target, value, need);
  if ('error' in r) return errorReply(400, r.error);
  return r;
}

function validate(ctx: AdminContext, spec: KindSpec, storeId: string, value: JsonObject): Reply | null {
  // The validator fills defaults into its own copy: semantic rules may depend on them, storage never carries them.
  const res = validateResource(spec.kind, value, {
    plugins: ctx.plugins,
    withDefaults: true,
    compileVars: checkExpr,
    ...(storeId === '' ? {} : { id: storeId }),
  });
  return res.ok ? null : errorReply(400, res.error);
}

/** Schema check, kind rules and references; the value is final when this returns null. */
async function checkAll(
  ctx: AdminContext,
  spec: KindSpec,
  method: 'PUT' | 'POST' | 'PATCH',
  target: Target,
  storeId: string,
  value: JsonObject,
): Promise<Reply | null> {
  const invalid = validate(ctx, spec, storeId, value);
  if (invalid) return invalid;
  return spec.check ? await spec.check({ ctx, method, target, storeId, value }) : null;
}

function bodyObject(body: Json | undefined, missing: string): JsonObject | Reply {
  if (body === undefined || body === null) return errorReply(400, missing);
  if (!isObject(body)) {
    const got = Array.isArray(body) ? 'array' : typeof body;
    return errorReply(400, `invalid configuration: wrong type: expected object, got ${got}`);
  }
  return structuredClone(body);
}

export async function handleResource(ctx: AdminContext, spec: KindSpec, req: ResourceRequest): Promise<Reply> {
  const s = KIND_SINGULAR[spec.kind];
  if (spec.unsupported.includes(req.method)) {
    return errorReply(405, `not supported \`${req.method}\` method for ${s}`);
  }
  const guarded = spec.guard?.(ctx, req.method);
  if (guarded) return guarded;
  const parsed = spec.parsePath ? spec.parsePath(req.segs, req.method) : defaultParse(req.segs);
  if (isReply(parsed)) return parsed;
  const target = parsed;
  if (target.subPath.length > 0 && req.method !== 'PATCH') return NOT_FOUND;
  try {
    switch (req.method) {
      case 'GET':
        return await get(ctx, spec, target, req.query);
      case 'PUT':
        return await put(ctx, spec, target, req);
      case 'POST':
        return await post(ctx, spec, target, req);
      case 'PATCH':
        return await patch(ctx, spec, target, req);
      case 'DELETE':
        return await remove(ctx, spec, target, req.query);
    }
  } catch (err) {
    ctx.logger.error({ kind: spec.kind, id: target.id, err: (err as Error).message }, 'admin store operation failed');
    return storeFailure(err);
  }
}

async function get(ctx: AdminContext, spec: KindSpec, target: Target, query: URLSearchParams): Promise<Reply> {
  if (target.id !== undefined) {
    const item = await ctx.store.fetch(spec.kind, target.scope + target.id);
    if (!item) return KEY_NOT_FOUND;
    return { status: 200, body: node(item, spec.view) };
  }
  // A sub-collection of a parent that does not exist (credentials of a deleted consumer) has no etcd
  // directory in APISIX: its list answers 404, not an empty list.
  if (spec.requireParent && (await spec.requireParent(ctx, target)) !== null) return KEY_NOT_FOUND;
  let items = await ctx.store.fetchList(spec.kind);
  if (target.scope !== '') items = items.filter((it) => it.id.startsWith(target.scope));
  return listReply(items, query, { view: spec.view, filterFields: spec.filterFields });
}

async function put(ctx: AdminContext, spec: KindSpec, target: Target, req: ResourceRequest): Promise<Reply> {
  const value = bodyObject(req.body, 'missing configurations');
  if (isReply(value)) return value;
  const forbidden = forbiddenProperty(value);
  if (forbidden) return errorReply(400, forbidden);
  const assigned = assign(spec, target, value, true);
  if (isReply(assigned)) return assigned;
  const parentMissing = await spec.requireParent?.(ctx, target);
  if (parentMissing) return parentMissing;
  if (spec.timestamps !== false) {
    const prev = await ctx.store.fetch(spec.kind, assigned.storeId);
    const now = nowSec();
    const created = prev?.value.create_time;
    value.create_time = typeof created === 'number' ? created : now;
    value.update_time = now;
  }
  const bad = await checkAll(ctx, spec, 'PUT', target, assigned.storeId, value);
  if (bad) return bad;
  const res = await ctx.store.put(spec.kind, assigned.storeId, value, writeOpts(req.ttl));
  return written(res.created ? 201 : 200, res.item, spec.view);
}

async function post(ctx: AdminContext, spec: KindSpec, target: Target, req: ResourceRequest): Promise<Reply> {
  const value = bodyObject(req.body, 'missing configurations');
  if (isReply(value)) return value;
  const forbidden = forbiddenProperty(value);
  if (forbidden) return errorReply(400, forbidden);
  const assigned = assign(spec, target, value, false);
  if (isReply(assigned)) return assigned;
  if (spec.timestamps !== false) {
    const now = nowSec();
    value.create_time = now;
    value.update_time = now;
  }
  const bad = await checkAll(ctx, spec, 'POST', target, '', value);
  if (bad) return bad;
  const id = await ctx.store.nextId();
  value.id = id;
  const res = await ctx.store.put(spec.kind, target.scope + id, value, writeOpts(req.ttl));
  return written(201, res.item, spec.view);
}

async function patch(ctx: AdminContext, spec: KindSpec, target: Target, req: ResourceRequest): Promise<Reply> {
  if (target.id === undefined) return errorReply(400, `missing ${KIND_SINGULAR[spec.kind]} id`);
  if (req.body === undefined) return errorReply(400, 'missing new configuration');
  if (target.subPath.length === 0 && !isObject(req.body)) return errorReply(400, 'invalid configuration');
  const old = await ctx.store.fetch(spec.kind, target.scope + target.id);
  if (!old) return KEY_NOT_FOUND;
  let value: JsonObject;
  const now = nowSec();
  if (target.subPath.length > 0) {
    const res = subPathPatch(old.value, target.subPath, req.body);
    if (!res.ok) return errorReply(400, res.error);
    value = res.value;
    if (spec.timestamps !== false) value.update_time = now;
  } else {
    const body = req.body as JsonObject;
    value = mergePatch(structuredClone(old.value), body);
    if (spec.timestamps !== false) {
      if (value.create_time === undefined) value.create_time = now;
      if (body.update_time === undefined) value.update_time = now;
    }
  }
  const assigned = assign(spec, target, value, true);
  if (isReply(assigned)) return assigned;
  const bad = await checkAll(ctx, spec, 'PATCH', target, assigned.storeId, value);
  if (bad) return bad;
  const res = await ctx.store.put(spec.kind, assigned.storeId, value, {
    ...writeOpts(req.ttl),
    expectModifiedIndex: old.modifiedIndex,
  });
  return written(200, res.item, spec.view);
}

async function remove(ctx: AdminContext, spec: KindSpec, target: Target, query: URLSearchParams): Promise<Reply> {
  if (target.id === undefined) return errorReply(400, `missing ${KIND_SINGULAR[spec.kind]} id`);
  const storeId = target.scope + target.id;
  if (query.get('force') !== 'true' && spec.checkDelete) {
    const inUse = await spec.checkDelete(ctx, storeId);
    if (inUse) return errorReply(400, inUse);
  }
  const gone = await ctx.store.delete(spec.kind, storeId);
  await spec.afterDelete?.(ctx, storeId);
  return gone ? deleted(gone.key) : KEY_NOT_FOUND;
}

function writeOpts(ttl: number | undefined): { ttl?: number } {
  return ttl === undefined ? {} : { ttl };
}
