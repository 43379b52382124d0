// Reference integrity helpers shared by the kind files: existence checks on write (fresh store reads, as
// APISIX does with etcd GETs) and "who still uses it" scans for delete protection.
import type { Json, JsonObject, Kind, StoredItem } from '../config/resources.ts';
import { KIND_SINGULAR } from '../config/resources.ts';
import { errorReply, type Reply } from './envelope.ts';
import type { AdminContext } from './kind.ts';
import { isObject } from './patch.ts';

function refId(v: Json | undefined): string | undefined {
  if (typeof v === 'string' && v !== '') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

/** 400 `failed to fetch upstream info by upstream id [99], response code: 404` when `id` names nothing. */
export async function checkRef(ctx: AdminContext, kind: Kind, id: Json | undefined): Promise<Reply | null> {
  const ref = refId(id);
  if (ref === undefined) return null;
  const found = await ctx.store.fetch(kind, ref);
  if (found) return null;
  const s = KIND_SINGULAR[kind];
  return errorReply(400, `failed to fetch ${s} info by ${s} id [${ref}], response code: 404`);
}

/** An upstream's `tls.client_cert_id` must name an ssl of `type: "client"`. */
export async function checkUpstreamTls(ctx: AdminContext, upstream: Json | undefined): Promise<Reply | null> {
  if (!isObject(upstream) || !isObject(upstream.tls)) return null;
  const ref = refId(upstream.tls.client_cert_id);
  if (ref === undefined) return null;
  const ssl = await ctx.store.fetch('ssls', ref);
  if (!ssl) return errorReply(400, `failed to fetch ssl info by ssl id [${ref}], response code: 404`);
  if (ssl.value.type !== 'client') return errorReply(400, `failed to fetch ssl info by ssl id [${ref}], wrong ssl type`);
  return null;
}

/** Upstream ids named by a `traffic-split` conf (`rules[].weighted_upstreams[].upstream_id`). */
export function trafficSplitUpstreamIds(plugins: Json | undefined): string[] {
  if (!isObject(plugins)) return [];
  const ts = plugins['traffic-split'];
  if (!isObject(ts) || !Array.isArray(ts.rules)) return [];
  const ids: string[] = [];
  for (const rule of ts.rules) {
    if (!isObject(rule) || !Array.isArray(rule.weighted_upstreams)) continue;
    for (const wu of rule.weighted_upstreams) {
      const id = isObject(wu) ? refId(wu.upstream_id) : undefined;
      if (id !== undefined) ids.push(id);
    }
  }
  return ids;
}

/** The proto named by a `grpc-transcode` conf. */
export function protoIdOf(plugins: Json | undefined): string | undefined {
  if (!isObject(plugins)) return undefined;
  const gt = plugins['grpc-transcode'];
  return isObject(gt) ? refId(gt.proto_id) : undefined;
}

/** References held inside a `plugins` map: traffic-split upstreams and the grpc-transcode proto. */
export async function checkPluginRefs(ctx: AdminContext, plugins: Json | undefined): Promise<Reply | null> {
  for (const id of trafficSplitUpstreamIds(plugins)) {
    const bad = await checkRef(ctx, 'upstreams', id);
    if (bad) return bad;
  }
  return await checkRef(ctx, 'protos', protoIdOf(plugins));
}

/** Runs checks in order and returns the first failure. */
export async function firstFailure(checks: readonly (() => Promise<Reply | null>)[]): Promise<Reply | null> {
  for (const check of checks) {
    const bad = await check();
    if (bad) return bad;
  }
  return null;
}

export interface User {
  readonly kind: Kind;
  readonly item: StoredItem;
}

/** The first stored object of `kinds` (fresh read) for which `uses` holds. */
export async function findUser(
  ctx: AdminContext,
  kinds: readonly Kind[],
  uses: (value: JsonObject) => boolean,
): Promise<User | undefined> {
  for (const kind of kinds) {
    for (const item of await ctx.store.fetchList(kind)) {
      if (uses(item.value)) return { kind, item };
    }
  }
  return undefined;
}

export function sameId(v: Json | undefined, id: string): boolean {
  return refId(v) === id;
}

/** The id shown in delete-protection messages: the value's id (username for consumers). */
export function displayId(user: User): string {
  const v = user.item.value;
  return refId(user.kind === 'consumers' ? v.username : v.id) ?? user.item.id;
}
