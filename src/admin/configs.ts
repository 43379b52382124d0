// API-driven standalone (APISIX admin/standalone.lua, 3.13+) and whole-config validation
// (admin/config_validate.lua): GET|HEAD|PUT /apisix/admin/configs and POST /apisix/admin/configs/validate.
// The whole configuration is one document of collections plus `<collection>_conf_version` keys; a PUT replaces
// the collections whose version moved, keeps those whose version is unchanged, and refuses a lower one.
import { parseDocument, stringify } from 'yaml';
import type { Json, JsonObject, Kind } from '../config/resources.ts';
import { parseJsonSafe, unsafeJsonReason } from '../config/safe-json.ts';
import { CONFIGS_COLLECTIONS, FileStore } from '../config/store-file.ts';
import { renderStandalone } from '../config/standalone-format.ts';
import { checkExpr } from '../router/expr.ts';
import { validateResource } from '../schema/validator.ts';
import { errorReply, NOT_FOUND, type Reply } from './envelope.ts';
import type { AdminContext } from './kind.ts';

const LAST_MODIFIED = 'X-Last-Modified';
const DIGEST = 'X-Digest';
const VERSION_SUFFIX = '_conf_version';

export interface ConfigsRequest {
  readonly method: string;
  readonly segs: readonly string[];
  readonly text: string;
  readonly contentType: string;
  readonly accept: string;
  readonly digest: string | undefined;
}

type Doc = { ok: true; doc: JsonObject } | { ok: false; reply: Reply };

/** JSON, or YAML when the client says `application/yaml` (APISIX checks the prefix only). */
function parseDoc(text: string, contentType: string): Doc {
  if (text.length === 0) return { ok: false, reply: errorReply(400, 'invalid request body: empty request body') };
  let value: unknown;
  if (contentType.startsWith('application/yaml')) {
    const doc = parseDocument(text, { uniqueKeys: false });
    value = doc.errors.length === 0 ? doc.toJS({ maxAliasCount: 1000 }) : undefined;
    if (typeof value !== 'object' || value === null) return { ok: false, reply: errorReply(400, 'invalid request body: invalid yaml request body') };
    const unsafe = unsafeJsonReason(value);
    if (unsafe !== null) return { ok: false, reply: errorReply(400, `invalid request body: ${unsafe}`) };
  } else {
    const parsed = parseJsonSafe(text);
    if (!parsed.ok) return { ok: false, reply: errorReply(400, `invalid request body: ${parsed.error}`) };
    value = parsed.value;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, reply: errorReply(400, 'invalid request body: the configuration must be an object') };
  }
  return { ok: true, doc: value as JsonObject };
}

export interface ValidationEntry {
  resource_type: string;
  resource_id?: string;
  index?: number;
  error: string;
}

function isObj(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The kind, store id (when it has one) and check of one item, as config_validate.lua check_conf does. */
function checkItem(ctx: AdminContext, coll: string, item: Json): string | null {
  if (!isObj(item)) return 'invalid configuration: wrong type: expected object, got ' + (Array.isArray(item) ? 'table' : typeof item);
  const rawId = item.id;
  const strId = rawId === undefined || rawId === null ? '' : String(rawId);
  let kind = coll as Kind;
  if (coll === 'consumers' && strId.includes('/credentials/')) kind = 'credentials';
  if (coll === 'secrets' && !strId.includes('/')) return `invalid secret id: ${strId}`;
  const value: JsonObject = {};
  for (const [k, v] of Object.entries(item)) if (k !== 'modifiedIndex') value[k] = v;
  const id = kind === 'consumers' ? (typeof item.username === 'string' ? item.username : undefined) : strId || undefined;
  const res = validateResource(kind, value, {
    plugins: ctx.plugins,
    withDefaults: false,
    compileVars: checkExpr,
    ...(id === undefined ? {} : { id }),
  });
  return res.ok ? null : res.error;
}

/** config_validate.lua validate_configuration: stops at the first error unless `all`. */
export function validateConfiguration(ctx: AdminContext, doc: JsonObject, all: boolean): ValidationEntry[] {
  const out: ValidationEntry[] = [];
  for (const coll of CONFIGS_COLLECTIONS) {
    const versionKey = coll + VERSION_SUFFIX;
    const v = doc[versionKey];
    if (v !== undefined && v !== null && typeof v !== 'number') {
      out.push({ resource_type: coll, error: all ? `${versionKey} must be a number, got ${typeof v}` : `${versionKey} must be a number` });
      if (!all) return out;
    }
    const items = doc[coll];
    if (items === undefined || items === null) continue;
    if (!Array.isArray(items)) {
      out.push({ resource_type: coll, error: `${coll} must be an array` });
      if (!all) return out;
      continue;
    }
    const seen = new Set<string>();
    items.forEach((item, index) => {
      if (!all && out.length > 0) return;
      const resourceId = isObj(item) ? String(item.id ?? item.username ?? '') : '';
      const err = checkItem(ctx, coll, item);
      if (err !== null) out.push({ resource_type: coll, resource_id: resourceId, index, error: err });
      if (!isObj(item) || (!all && out.length > 0)) return;
      const ident = coll === 'consumers' ? (item.id ?? item.username) : item.id;
      if (ident === undefined || ident === null) return;
      const identType = coll === 'consumers' ? (item.id !== undefined ? 'credential id' : 'username') : 'id';
      const key = String(ident);
      if (seen.has(key)) out.push({ resource_type: coll, resource_id: resourceId, index, error: `found duplicate ${identType} ${key} in ${coll}` });
      seen.add(key);
    });
    if (!all && out.length > 0) return out;
  }
  return out;
}

function metaHeaders(store: FileStore): Record<string, string> {
  const st = store.configsState();
  const h: Record<string, string> = {};
  if (st.lastModified !== null) h[LAST_MODIFIED] = String(st.lastModified);
  if (st.digest !== null) h[DIGEST] = st.digest;
  return h;
}

function dump(store: FileStore, accept: string): Reply {
  const st = store.configsState();
  const rendered = JSON.parse(renderStandalone(store.all(), 'json')) as JsonObject;
  const doc: JsonObject = {};
  for (const coll of CONFIGS_COLLECTIONS) {
    doc[coll + VERSION_SUFFIX] = st.confVersions.get(coll) ?? 0;
    if (rendered[coll] !== undefined) doc[coll] = rendered[coll]!;
  }
  const headers = metaHeaders(store);
  if (accept.startsWith('application/yaml')) {
    return { status: 200, body: stringify(doc, { lineWidth: 0 }), raw: true, headers: { ...headers, 'Content-Type': 'application/yaml' } };
  }
  return { status: 200, body: doc, headers };
}

async function update(ctx: AdminContext, store: FileStore, req: ConfigsRequest): Promise<Reply> {
  if (req.digest === undefined) return errorReply(400, 'missing digest header');
  const parsed = parseDoc(req.text, req.contentType);
  if (!parsed.ok) return parsed.reply;
  const st = store.configsState();
  if (st.digest !== null && st.digest === req.digest) return { status: 204 };
  const errors = validateConfiguration(ctx, parsed.doc, false);
  if (errors.length > 0) return errorReply(400, errors[0]!.error);
  const collections = new Map<string, readonly JsonObject[] | 'keep'>();
  const versions = new Map<string, number>();
  for (const coll of CONFIGS_COLLECTIONS) {
    const versionKey = coll + VERSION_SUFFIX;
    const current = st.confVersions.get(coll) ?? 0;
    const given = parsed.doc[versionKey];
    let next: number;
    if (typeof given === 'number') {
      if (given < current) return errorReply(400, `${versionKey} must be greater than or equal to (${current})`);
      next = given;
    } else next = current + 1;
    versions.set(coll, next);
    const items = parsed.doc[coll];
    collections.set(coll, next === current ? 'keep' : Array.isArray(items) ? (items as JsonObject[]) : []);
  }
  const lastModified = Math.floor(Date.now() / 1000);
  const res = await store.replaceCollections({ collections, confVersions: versions, digest: req.digest, lastModified });
  if (!res.ok) return errorReply(400, res.error);
  return { status: 202, headers: { [LAST_MODIFIED]: String(lastModified), [DIGEST]: req.digest } };
}

function validateReply(ctx: AdminContext, req: ConfigsRequest): Reply {
  const parsed = parseDoc(req.text, req.contentType);
  if (!parsed.ok) return parsed.reply;
  const errors = validateConfiguration(ctx, parsed.doc, true);
  if (errors.length === 0) return { status: 200, body: {} };
  return { status: 400, body: { error_msg: 'Configuration validation failed', errors } };
}

/**
 * `configs` requests. POST /configs/validate works with every store (APISIX offers it in etcd mode too); the
 * dump and replace need the writable standalone store, and answer 404 otherwise.
 */
export async function handleConfigs(ctx: AdminContext, req: ConfigsRequest): Promise<Reply> {
  const sub = req.segs.slice(1);
  if (sub.length === 1 && sub[0] === 'validate') return req.method === 'POST' ? validateReply(ctx, req) : NOT_FOUND;
  if (sub.length > 0) return NOT_FOUND;
  const store = ctx.store;
  if (!(store instanceof FileStore) || !store.isWritable) return NOT_FOUND;
  switch (req.method) {
    case 'GET':
      return dump(store, req.accept);
    case 'HEAD':
      return { status: 200, headers: metaHeaders(store) };
    case 'PUT':
      return await update(ctx, store, req);
    case 'POST':
      return errorReply(404, 'Not found');
    default:
      return NOT_FOUND;
  }
}
