// Request keys and dynamic numbers of the rate limiting plugins (limit-count, limit-req, limit-conn).
// Templates follow APISIX's core.utils.resolve_var: `$name` or `${name}` (`${name ?? default}` supplies a
// default when the variable is unset; a `$` preceded by `\` stays literal); it reports how many variables
// resolved, because a template resolving none means "no key".
// Key types: `var` (one variable), `var_combination` (a template) or `constant`. An absent key falls back to
// the client address, as in APISIX.
import type { Vars } from '../../../router/vars.ts';
import { varToString } from '../../template.ts';

export type KeyType = 'var' | 'var_combination' | 'constant';

const VAR_RE = /\$(?:\{\s*([^}]+?)\s*\}|([\w.]+))/g;
const DEFAULT_SEP = /\s*\?\?\s*/;

/** A compiled resolve_var template. */
export class VarTemplate {
  readonly constant: string | null;
  readonly #literals: string[] = [];
  readonly #names: string[] = [];
  readonly #defaults: (string | null)[] = [];
  /** Variables resolved by the last render (APISIX's n_resolved). */
  resolved = 0;

  constructor(text: string) {
    let last = 0;
    for (const m of text.matchAll(VAR_RE)) {
      const at = m.index;
      if (at > 0 && text.charCodeAt(at - 1) === 92) continue;
      this.#literals.push(text.slice(last, at));
      const segs = (m[1] ?? m[2]!).split(DEFAULT_SEP);
      this.#names.push(segs[0]!);
      this.#defaults.push(segs.length > 1 ? segs[1]! : null);
      last = at + m[0].length;
    }
    this.#literals.push(text.slice(last));
    this.constant = this.#names.length === 0 ? text : null;
  }

  // hot path
  render(vars: Vars): string {
    this.resolved = 0;
    if (this.constant !== null) return this.constant;
    let out = this.#literals[0]!;
    for (let i = 0; i < this.#names.length; i++) {
      const v = vars.get(this.#names[i]!);
      if (v !== undefined && v !== null) {
        this.resolved++;
        out += varToString(v);
      } else {
        const d = this.#defaults[i]!;
        if (d !== null) {
          this.resolved++;
          out += d;
        }
      }
      out += this.#literals[i + 1]!;
    }
    return out;
  }
}

export class RequestKey {
  readonly #type: KeyType;
  readonly #name: string;
  readonly #template: VarTemplate | null;

  constructor(type: KeyType, key: string) {
    this.#type = type;
    this.#name = key;
    this.#template = type === 'var_combination' ? new VarTemplate(key) : null;
  }

  // hot path
  resolve(vars: Vars): string {
    let key: string | undefined;
    if (this.#type === 'constant') key = this.#name;
    else if (this.#type === 'var') {
      const v = vars.get(this.#name);
      key = v === undefined || v === null ? undefined : varToString(v);
    } else {
      const t = this.#template!;
      const out = t.render(vars);
      key = t.constant !== null || t.resolved > 0 ? out : undefined;
    }
    if (key === undefined) key = varToString(vars.get('remote_addr'));
    return key;
  }
}

/**
 * A number that is either fixed or a template resolved per request (`count: "${http_count ?? 2}"`). APISIX
 * requires the resolved value to be an integer, positive (or non-negative when `allowZero`, e.g. a burst).
 */
export class DynamicNumber {
  readonly #fixed: number | null;
  readonly #template: VarTemplate | null;
  readonly #allowZero: boolean;

  constructor(v: number | string, allowZero = false) {
    this.#fixed = typeof v === 'number' ? v : null;
    this.#template = typeof v === 'string' ? new VarTemplate(v) : null;
    this.#allowZero = allowZero;
  }

  /** The value, or an error message (APISIX's wording). */
  resolve(vars: Vars): number | string {
    if (this.#fixed !== null) return this.#fixed;
    const text = this.#template!.render(vars);
    const n = text.trim() === '' ? NaN : Number(text);
    if (!Number.isFinite(n)) return `resolved value is not a number: ${text}`;
    if (this.#allowZero ? n < 0 : n <= 0) {
      return this.#allowZero
        ? `resolved value must be a non-negative number, got: ${n}`
        : `resolved value must be a positive number, got: ${n}`;
    }
    if (!Number.isInteger(n)) return `resolved value must be an integer, got: ${n}`;
    if (n > Number.MAX_SAFE_INTEGER) return `resolved value exceeds safe integer range (2^53-1), got: ${n}`;
    return n;
  }
}
