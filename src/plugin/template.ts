// Config-time compiled text templates shared by plugins:
// - var templates: APISIX `core.utils.resolve_var` (`$name`, `${name}`; a `$` preceded by `\` stays literal;
//   an unknown variable renders as ''; `$1`.. read regex captures when given);
// - substitution templates: `ngx.re.sub` replacements (`$0`..`$9`, `${N}`, `$$`);
// - PCRE option strings of ngx.re ("jo", "ijo", ...) to JavaScript RegExps;
// - nginx's NGX_ESCAPE_URI encoding (APISIX `core.utils.uri_safe_encode`).
import type { Vars, VarValue } from '../router/vars.ts';
import { RegexError, translatePcre } from '../router/regex.ts';

/** A compiled var template: literal parts interleaved with variable names (a number is a capture index). */
export interface VarTemplate {
  /** The whole text when the template has no variable. */
  readonly constant: string | null;
  readonly literals: readonly string[];
  readonly names: readonly (string | number)[];
}

const VAR_RE = /\$(?:\{(\w+)\}|(\w+))/g;

export function compileVarTemplate(text: string): VarTemplate {
  const literals: string[] = [];
  const names: (string | number)[] = [];
  let last = 0;
  for (const m of text.matchAll(VAR_RE)) {
    const at = m.index;
    if (at > 0 && text.charCodeAt(at - 1) === 92) continue;
    literals.push(text.slice(last, at));
    const name = m[1] ?? m[2];
    names.push(/^\d+$/.test(name) ? Number(name) : name);
    last = at + m[0].length;
  }
  literals.push(text.slice(last));
  return { constant: names.length === 0 ? text : null, literals, names };
}

/** A variable value as nginx prints it: '' for unset, multi-values joined with ", ". */
export function varToString(v: VarValue): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.join(', ');
  return String(v);
}

/** Renders a var template; `captures` are regex match groups (index 0 = whole match). */
export function renderTemplate(t: VarTemplate, vars: Vars, captures?: RegExpExecArray | null): string {
  // hot path
  if (t.constant !== null) return t.constant;
  let out = t.literals[0];
  for (let i = 0; i < t.names.length; i++) {
    const name = t.names[i];
    if (typeof name === 'number') {
      const c = captures ? captures[name] : undefined;
      out += c ?? '';
    } else {
      out += varToString(vars.get(name));
    }
    out += t.literals[i + 1];
  }
  return out;
}

/** A compiled `ngx.re.sub` replacement: literals interleaved with capture indexes. */
export interface SubTemplate {
  readonly literals: readonly string[];
  readonly groups: readonly number[];
}

/** Throws Error on a `$` that is not `$N`, `${N}` or `$$` (ngx.re.sub rejects those too). */
export function compileSubTemplate(text: string): SubTemplate {
  const literals: string[] = [];
  const groups: number[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== '$') {
      cur += c;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      cur += '$';
      i++;
      continue;
    }
    const m = /^(?:\{(\d+)\}|(\d+))/.exec(text.slice(i + 1));
    if (!m) throw new Error(`invalid capturing variable name in replacement: ${text}`);
    literals.push(cur);
    cur = '';
    groups.push(Number(m[1] ?? m[2]));
    i += m[0].length;
  }
  literals.push(cur);
  return { literals, groups };
}

/** Renders a substitution template for one match. */
export function renderSub(t: SubTemplate, m: RegExpExecArray): string {
  let out = t.literals[0];
  for (let i = 0; i < t.groups.length; i++) {
    out += (m[t.groups[i]] ?? '') + t.literals[i + 1];
  }
  return out;
}

/**
 * ngx.re.sub / gsub: replaces the first (or, with a global regex, every) match of `re` in `subject`.
 * Returns null when nothing matched. `re` must carry the `g` flag for gsub and is reset before use.
 */
export function substitute(subject: string, re: RegExp, t: SubTemplate): string | null {
  re.lastIndex = 0;
  if (!re.global) {
    const m = re.exec(subject);
    if (m === null) return null;
    return subject.slice(0, m.index) + renderSub(t, m) + subject.slice(m.index + m[0].length);
  }
  let out = '';
  let last = 0;
  let matched = false;
  for (let guard = 0; guard <= subject.length; guard++) {
    const m = re.exec(subject);
    if (m === null) break;
    matched = true;
    out += subject.slice(last, m.index) + renderSub(t, m);
    last = m.index + m[0].length;
    if (m[0].length === 0) re.lastIndex++;
  }
  if (!matched) return null;
  return out + subject.slice(last);
}

/**
 * Compiles a PCRE pattern with ngx.re options ("jo", "ijo", "jom", ...). `j`, `o`, `D`, `J`, `a` are
 * accepted and ignored; `i`, `m`, `s`, `u` map to RegExp flags; anything else throws RegexError.
 */
export function compileNgxRegex(pattern: string, options: string, global = false): RegExp {
  const flags = new Set<string>();
  for (const o of options) {
    if (o === 'i' || o === 'm' || o === 's' || o === 'u') flags.add(o);
    else if (o !== 'j' && o !== 'o' && o !== 'D' && o !== 'J' && o !== 'a') {
      throw new RegexError(`unsupported regex option '${o}'`);
    }
  }
  const source = translatePcre(pattern, flags);
  if (global) flags.add('g');
  try {
    return new RegExp(source, [...flags].join(''));
  } catch (err) {
    throw new RegexError((err as Error).message, { cause: err });
  }
}

const HEX = '0123456789ABCDEF';

/** Bytes NGX_ESCAPE_URI escapes: controls, space, '#', '%', '?', DEL and every non-ASCII byte. */
function escapedByte(b: number): boolean {
  return b <= 0x20 || b === 0x23 || b === 0x25 || b === 0x3f || b >= 0x7f;
}

/** APISIX `uri_safe_encode`: percent-encodes what NGX_ESCAPE_URI escapes; returns `uri` itself when clean. */
export function uriSafeEncode(uri: string): string {
  let clean = true;
  for (let i = 0; i < uri.length; i++) {
    if (escapedByte(uri.charCodeAt(i))) {
      clean = false;
      break;
    }
  }
  if (clean) return uri;
  const bytes = Buffer.from(uri, 'utf8');
  let out = '';
  for (const b of bytes) {
    out += escapedByte(b) ? '%' + HEX[b >> 4] + HEX[b & 15] : String.fromCharCode(b);
  }
  return out;
}
