// Header actions of proxy-rewrite and response-rewrite, compiled at config time. APISIX runs them in the order
// add, remove, set; values are var templates ($remote_addr, ${http_x}, $1 from regex_uri captures).
import type { HeaderMap, HeaderValue } from './context.ts';
import type { Vars } from '../router/vars.ts';
import { compileVarTemplate, renderTemplate, type VarTemplate } from './template.ts';

export interface HeaderTarget {
  readonly headers: HeaderMap;
  setHeader(name: string, value: HeaderValue | null): void;
}

export interface HeaderOps {
  readonly add: readonly (readonly [string, VarTemplate])[];
  readonly remove: readonly string[];
  /** A null template removes the header (legacy map form with an empty value). */
  readonly set: readonly (readonly [string, VarTemplate | null])[];
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\r\n\0]/;

/** Validates a header name/value pair from a conf; returns an error message or null. */
export function checkHeader(name: string, value: unknown): string | null {
  if (name.length === 0) return 'invalid field length in header';
  if (!TOKEN.test(name)) return `invalid field character in header: ${name}`;
  if (typeof value !== 'string' && typeof value !== 'number') return 'invalid type as header value';
  if (BAD_VALUE.test(String(value))) return `invalid value character in header: ${name}`;
  return null;
}

function pairs(obj: unknown): [string, string][] {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return [];
  return Object.entries(obj as Record<string, unknown>).map(([k, v]) => [k, String(v)]);
}

/** Splits response-rewrite's `"Name: value"` add entries. */
export function splitHeaderLine(line: string): [string, string] {
  const colon = line.indexOf(':');
  if (colon < 0) return [line.trim(), ''];
  return [line.slice(0, colon).trim(), line.slice(colon + 1).trim()];
}

/**
 * Compiles `headers`: either `{add, set, remove}` or the legacy map form (every entry is a `set`; with
 * `emptyRemoves`, an empty value removes the header). `add` is a map (proxy-rewrite) or a list of
 * "Name: value" lines (response-rewrite).
 */
export function compileHeaderOps(headers: unknown, emptyRemoves: boolean): HeaderOps {
  const h = (headers ?? {}) as Record<string, unknown>;
  const structured = h.add !== undefined || h.set !== undefined || h.remove !== undefined;
  if (!structured) {
    return {
      add: [],
      remove: [],
      set: pairs(h).map(([k, v]) => [k.toLowerCase(), emptyRemoves && v === '' ? null : compileVarTemplate(v)]),
    };
  }
  const addPairs = Array.isArray(h.add) ? (h.add as unknown[]).map((l) => splitHeaderLine(String(l))) : pairs(h.add);
  return {
    add: addPairs.map(([k, v]) => [k.toLowerCase(), compileVarTemplate(v)]),
    remove: Array.isArray(h.remove) ? (h.remove as unknown[]).map((n) => String(n).toLowerCase()) : [],
    set: pairs(h.set).map(([k, v]) => [k.toLowerCase(), compileVarTemplate(v)]),
  };
}

/** Every header name/value of a `headers` conf, for checkHeader. */
export function headerEntries(headers: unknown): [string, unknown][] {
  const h = (headers ?? {}) as Record<string, unknown>;
  const structured = h.add !== undefined || h.set !== undefined || h.remove !== undefined;
  if (!structured) return Object.entries(h);
  const out: [string, unknown][] = [];
  if (Array.isArray(h.add)) for (const l of h.add as unknown[]) out.push(splitHeaderLine(String(l)));
  else out.push(...Object.entries((h.add ?? {}) as Record<string, unknown>));
  out.push(...Object.entries((h.set ?? {}) as Record<string, unknown>));
  if (Array.isArray(h.remove)) for (const n of h.remove as unknown[]) out.push([String(n), '']);
  return out;
}

export function hasHeaderOps(ops: HeaderOps): boolean {
  return ops.add.length + ops.remove.length + ops.set.length > 0;
}

/** Applies the actions in APISIX order: add (append to existing values), remove, set. */
export function applyHeaderOps(
  ops: HeaderOps,
  target: HeaderTarget,
  vars: Vars,
  captures?: RegExpExecArray | null,
): void {
  for (const [name, tpl] of ops.add) {
    const value = renderTemplate(tpl, vars, captures);
    const existing = target.headers[name];
    if (existing === undefined) target.setHeader(name, value);
    else if (Array.isArray(existing)) target.setHeader(name, [...existing, value]);
    else target.setHeader(name, [existing, value]);
  }
  for (const name of ops.remove) target.setHeader(name, null);
  for (const [name, tpl] of ops.set) {
    target.setHeader(name, tpl === null ? null : renderTemplate(tpl, vars, captures));
  }
}
