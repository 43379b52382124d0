// Admin API response values and the APISIX v3 envelopes (etcd v2-style nodes, unwrapped as v3_adapter does).
// Handlers return a Reply; only server.ts writes to the socket.
import type { JsonObject, StoredItem } from '../config/resources.ts';
import { isSwitchyardError } from '../errors.ts';

export interface Reply {
  readonly status: number;
  /** JSON-encoded unless `raw` is set; absent = empty body. */
  readonly body?: unknown;
  /** The body is sent as-is (APISIX answers a few cases with a bare string). */
  readonly raw?: boolean;
  /** Extra response headers (e.g. X-Digest of /configs). */
  readonly headers?: Readonly<Record<string, string>>;
}

export function reply(status: number, body?: unknown): Reply {
  return { status, body };
}

export function rawReply(status: number, text: string): Reply {
  return { status, body: text, raw: true };
}

export function errorReply(status: number, message: string): Reply {
  return { status, body: { error_msg: message } };
}

export const KEY_NOT_FOUND: Reply = { status: 404, body: { message: 'Key not found' } };
export const NOT_FOUND: Reply = { status: 404, body: { error_msg: 'not found' } };

/** Resources carry a `status` field too (routes, ssls: 0|1), so an HTTP status (>= 100) is required. */
export function isReply(x: unknown): x is Reply {
  return typeof x === 'object' && x !== null && typeof (x as Reply).status === 'number' && (x as Reply).status >= 100;
}

export type ValueView = (value: JsonObject) => JsonObject;

/** GET one / list item: `{key, value, createdIndex, modifiedIndex}`. */
export function node(item: StoredItem, view?: ValueView): JsonObject {
  return {
    key: item.key,
    value: view ? view(item.value) : item.value,
    createdIndex: item.createdIndex,
    modifiedIndex: item.modifiedIndex,
  };
}

/** PUT / POST / PATCH: `{key, value}` without indices. */
export function written(status: number, item: StoredItem, view?: ValueView): Reply {
  return { status, body: { key: item.key, value: view ? view(item.value) : item.value } };
}

export function deleted(key: string): Reply {
  return { status: 200, body: { deleted: '1', key } };
}

/** Maps a ConfigStore failure to APISIX's 503 `{error_msg}` (CAS conflict keeps APISIX's wording). */
export function storeFailure(err: unknown): Reply {
  if (isSwitchyardError(err, 'SWY_ERR_STORE_CONFLICT')) return errorReply(503, 'value changed before overwritten');
  if (isSwitchyardError(err)) return errorReply(err.status >= 400 ? err.status : 503, err.message);
  return errorReply(503, err instanceof Error ? err.message : String(err));
}
