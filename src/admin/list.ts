// List answers (APISIX admin/v3_adapter.lua): ANDed filters `name` (regex on value.name), `label` (label key
// present), `uri` (regex on uri or any of uris), `filter=` (exact match on whitelisted fields), then paging
// with `page`/`page_size` (only when both are given; sorted by createdIndex; total counts before paging).
import type { JsonObject, StoredItem } from '../config/resources.ts';
import { errorReply, node, rawReply, type Reply, type ValueView } from './envelope.ts';
import { isObject } from './patch.ts';

const MAX_PATTERN = 512;

function compile(pattern: string): RegExp | string {
  if (pattern.length > MAX_PATTERN) return `regex too long (max ${MAX_PATTERN})`;
  try {
    return new RegExp(pattern);
  } catch (err) {
    return (err as Error).message;
  }
}

function uriMatches(value: JsonObject, re: RegExp): boolean {
  if (typeof value.uri === 'string' && re.test(value.uri)) return true;
  if (Array.isArray(value.uris)) {
    for (const u of value.uris) if (typeof u === 'string' && re.test(u)) return true;
  }
  return false;
}

export function listReply(
  items: readonly StoredItem[],
  query: URLSearchParams,
  opts: { view?: ValueView; filterFields?: readonly string[] },
): Reply {
  const preds: ((v: JsonObject) => boolean)[] = [];
  const name = query.get('name');
  if (name !== null) {
    const re = compile(name);
    if (typeof re === 'string') return errorReply(400, `invalid argument name: ${re}`);
    preds.push((v) => typeof v.name === 'string' && re.test(v.name));
  }
  const label = query.get('label');
  if (label !== null) preds.push((v) => isObject(v.labels) && Object.hasOwn(v.labels, label));
  const uri = query.get('uri');
  if (uri !== null) {
    const re = compile(uri);
    if (typeof re === 'string') return errorReply(400, `invalid argument uri: ${re}`);
    preds.push((v) => uriMatches(v, re));
  }
  const filter = query.get('filter');
  if (filter !== null && opts.filterFields && opts.filterFields.length > 0) {
    const wanted = new URLSearchParams(filter);
    for (const field of opts.filterFields) {
      const expect = wanted.get(field);
      if (expect !== null) preds.push((v) => v[field] !== undefined && v[field] !== null && String(v[field]) === expect);
    }
  }

  let list = preds.length === 0 ? [...items] : items.filter((it) => preds.every((p) => p(it.value)));
  const total = list.length;

  const pageRaw = query.get('page');
  const sizeRaw = query.get('page_size');
  const page = pageRaw === null ? NaN : Number(pageRaw);
  const size = sizeRaw === null ? NaN : Number(sizeRaw);
  if (pageRaw !== null && sizeRaw !== null && !Number.isNaN(page) && !Number.isNaN(size)) {
    if (size < 10 || size > 500) return rawReply(400, 'page_size must be between 10 and 500');
    const p = page < 1 ? 1 : Math.floor(page);
    const s = Math.floor(size);
    list.sort((a, b) => a.createdIndex - b.createdIndex);
    list = list.slice((p - 1) * s, p * s);
  }
  return { status: 200, body: { list: list.map((it) => node(it, opts.view)), total } };
}
