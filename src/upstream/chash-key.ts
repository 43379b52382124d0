// Compiles an upstream's hash_on/key into the list of variable names (and literals) the chash balancer reads
// per request. Done once per upstream conf; the request path only reads variables and concatenates.
import type { JsonObject } from '../config/resources.ts';
import type { VarValue, Vars } from '../router/vars.ts';

/** One piece of the key: a variable name to read, or a literal (vars_combinations text between variables). */
interface Part {
  readonly name: string | null;
  readonly literal: string;
}

const FALLBACK_VAR = 'remote_addr';
const VAR_NAME = /^[A-Za-z0-9_]+/;

export class ChashKey {
  private readonly single: string | null;
  private readonly parts: readonly Part[];

  constructor(conf: JsonObject) {
    const hashOn = typeof conf.hash_on === 'string' ? conf.hash_on : 'vars';
    const key = typeof conf.key === 'string' ? conf.key : '';
    this.parts = [];
    switch (hashOn) {
      case 'vars':
        this.single = key === '' ? FALLBACK_VAR : key;
        break;
      case 'header':
        this.single = 'http_' + key.toLowerCase().replaceAll('-', '_');
        break;
      case 'cookie':
        this.single = 'cookie_' + key;
        break;
      case 'consumer':
        this.single = 'consumer_name';
        break;
      case 'vars_combinations':
        this.single = null;
        this.parts = parseTemplate(key);
        break;
      default:
        throw new Error(`invalid hash_on ${JSON.stringify(hashOn)}`);
    }
  }

  /** The hash key of a request; an empty or missing key falls back to remote_addr (APISIX chash). */
  get(vars: Vars): string {
    // hot path
    let s: string;
    if (this.single !== null) {
      s = varString(vars.get(this.single));
    } else {
      s = '';
      const parts = this.parts;
      for (let i = 0; i < parts.length; i++) {
        const p = parts[i]!;
        s += p.name === null ? p.literal : varString(vars.get(p.name));
      }
    }
    return s !== '' ? s : varString(vars.get(FALLBACK_VAR));
  }
}

function varString(v: VarValue): string {
  // hot path
  if (typeof v === 'string') return v;
  if (v === undefined || v === null) return '';
  if (Array.isArray(v)) return v.join(',');
  return String(v);
}

/** `$request_uri-$remote_addr` / `${arg_a}x`: variables are `$name` or `${name}`, everything else is literal. */
export function parseTemplate(tpl: string): Part[] {
  const parts: Part[] = [];
  let literal = '';
  let i = 0;
  while (i < tpl.length) {
    const c = tpl[i]!;
    if (c === '$') {
      let name: string | null = null;
      let len = 0;
      if (tpl[i + 1] === '{') {
        const close = tpl.indexOf('}', i + 2);
        if (close > i + 2) {
          name = tpl.slice(i + 2, close);
          len = close + 1 - i;
        }
      } else {
        const m = VAR_NAME.exec(tpl.slice(i + 1));
        if (m) {
          name = m[0];
          len = 1 + name.length;
        }
      }
      if (name !== null) {
        if (literal !== '') parts.push({ name: null, literal });
        literal = '';
        parts.push({ name, literal: '' });
        i += len;
        continue;
      }
    }
    literal += c;
    i++;
  }
  if (literal !== '') parts.push({ name: null, literal });
  return parts;
}
