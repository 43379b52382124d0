// Request keys for rate limiting plugins: `var` (one variable), `var_combination` (a template such as
// `$remote_addr $consumer_name`; no variable resolved means no key) or `constant`. An absent key falls back to
// the client address, as in APISIX.
import type { Vars } from '../../../router/vars.ts';
import { compileVarTemplate, varToString, type VarTemplate } from '../../template.ts';

export type KeyType = 'var' | 'var_combination' | 'constant';

export class RequestKey {
  readonly #type: KeyType;
  readonly #name: string;
  readonly #template: VarTemplate | null;

  constructor(type: KeyType, key: string) {
    this.#type = type;
    this.#name = key;
    this.#template = type === 'var_combination' ? compileVarTemplate(key) : null;
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
      if (t.constant !== null) key = t.constant;
      else {
        let out = t.literals[0]!;
        let resolved = 0;
        for (let i = 0; i < t.names.length; i++) {
          const v = vars.get(t.names[i] as string);
          if (v !== undefined && v !== null) {
            resolved++;
            out += varToString(v);
          }
          out += t.literals[i + 1]!;
        }
        key = resolved === 0 ? undefined : out;
      }
    }
    if (key === undefined || key === '') key = varToString(vars.get('remote_addr'));
    return key;
  }
}
