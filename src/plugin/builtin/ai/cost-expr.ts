// ai-rate-limiting `cost_expr` (limit_strategy: expression): an arithmetic expression over the fields of the
// provider's raw `usage` object, e.g. `prompt_tokens + completion_tokens * 4` or
// `input_tokens + cache_creation_input_tokens + output_tokens`. APISIX evaluates it as Lua in a sandbox; here a
// small parser compiles it once, at config check time, into a tree of numeric nodes (no eval, no Function).
//
// Grammar (Lua's precedence): expr := term (('+'|'-') term)*; term := unary (('*'|'/'|'%') unary)*;
// unary := '-' unary | power; power := atom ('^' unary)?; atom := number | name | name '(' args ')' | '(' expr ')'.
// Functions: abs, ceil, floor, max, min (also as math.abs ...), as APISIX's sandbox. A name is a usage field; a
// dotted name (`prompt_tokens_details.cached_tokens`) walks nested objects. A bare name that is not a number
// at the top level is searched level by level in nested objects, the larger value winning on a clash (APISIX
// find_leaf). A missing or non-numeric field is 0. The result: an error when not finite (nothing charged),
// 0 when negative, else rounded half up.

type Node = (usage: Record<string, unknown>) => number;

// A Map, not an object literal: a name like `constructor` or `__proto__` must not find Object.prototype's.
const FUNCS: ReadonlyMap<string, { arity: [number, number]; fn: (...xs: number[]) => number }> = new Map([
  ['abs', { arity: [1, 1], fn: Math.abs }],
  ['ceil', { arity: [1, 1], fn: Math.ceil }],
  ['floor', { arity: [1, 1], fn: Math.floor }],
  ['max', { arity: [1, 64], fn: Math.max }],
  ['min', { arity: [1, 64], fn: Math.min }],
]);

const MAX_LENGTH = 1024;
const MAX_DEPTH = 64;

interface Token {
  readonly kind: 'num' | 'name' | 'op' | 'end';
  readonly text: string;
  readonly pos: number;
}

const NUMBER = /^(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)/;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*/;

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    const rest = src.slice(i);
    const num = NUMBER.exec(rest);
    if (num !== null) {
      out.push({ kind: 'num', text: num[0], pos: i });
      i += num[0].length;
      if (i < src.length && /[A-Za-z_.]/.test(src[i]!)) throw new Error(`unexpected character '${src[i]}' at ${i + 1}`);
      continue;
    }
    const name = NAME.exec(rest);
    if (name !== null) {
      out.push({ kind: 'name', text: name[0], pos: i });
      i += name[0].length;
      if (i < src.length && src[i] === '.') throw new Error(`invalid field reference: ${name[0]}.`);
      continue;
    }
    if ('+-*/%^(),'.includes(c)) {
      out.push({ kind: 'op', text: c, pos: i });
      i++;
      continue;
    }
    throw new Error(`unexpected character '${c}' at ${i + 1}`);
  }
  out.push({ kind: 'end', text: '', pos: src.length });
  return out;
}

function numberAt(v: unknown): number {
  return typeof v === 'number' ? v : 0;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** APISIX find_leaf: top level first, then each nested level; the larger value when several match on a level. */
function findLeaf(raw: Record<string, unknown>, name: string): number {
  const top = Object.hasOwn(raw, name) ? raw[name] : undefined;
  if (typeof top === 'number') return top;
  let level: Record<string, unknown>[] = [raw];
  while (level.length > 0) {
    let best: number | null = null;
    const next: Record<string, unknown>[] = [];
    for (const t of level) {
      for (const k of Object.keys(t)) {
        const sub = t[k];
        if (!isObj(sub)) continue;
        const x = Object.hasOwn(sub, name) ? sub[name] : undefined;
        if (typeof x === 'number' && (best === null || x > best)) best = x;
        next.push(sub);
      }
    }
    if (best !== null) return best;
    level = next;
  }
  return 0;
}

function fieldNode(name: string): Node {
  if (!name.includes('.')) return (u) => findLeaf(u, name);
  const segs = name.split('.');
  return (u) => {
    let v: unknown = u;
    for (const s of segs) {
      if (!isObj(v) || !Object.hasOwn(v, s)) return 0;
      v = v[s];
    }
    return numberAt(v);
  };
}

class Parser {
  readonly #tokens: Token[];
  #at = 0;
  #depth = 0;

  constructor(tokens: Token[]) {
    this.#tokens = tokens;
  }

  parse(): Node {
    const n = this.#expr();
    const t = this.#peek();
    if (t.kind !== 'end') throw new Error(`unexpected '${t.text}' at ${t.pos + 1}`);
    return n;
  }

  #peek(): Token {
    return this.#tokens[this.#at]!;
  }

  #take(): Token {
    return this.#tokens[this.#at++]!;
  }

  #isOp(text: string): boolean {
    const t = this.#peek();
    return t.kind === 'op' && t.text === text;
  }

  #expect(text: string): void {
    const t = this.#take();
    if (t.kind !== 'op' || t.text !== text) throw new Error(`expected '${text}' at ${t.pos + 1}`);
  }

  #nest<T>(f: () => T): T {
    if (++this.#depth > MAX_DEPTH) throw new Error('expression nested too deeply');
    try {
      return f();
    } finally {
      this.#depth--;
    }
  }

  #expr(): Node {
    return this.#nest(() => {
      let left = this.#term();
      while (this.#isOp('+') || this.#isOp('-')) {
        const op = this.#take().text;
        const a = left;
        const b = this.#term();
        left = op === '+' ? (u) => a(u) + b(u) : (u) => a(u) - b(u);
      }
      return left;
    });
  }

  #term(): Node {
    let left = this.#unary();
    while (this.#isOp('*') || this.#isOp('/') || this.#isOp('%')) {
      const op = this.#take().text;
      const a = left;
      const b = this.#unary();
      if (op === '*') left = (u) => a(u) * b(u);
      else if (op === '/') left = (u) => a(u) / b(u);
      // Lua's modulo: a - floor(a / b) * b (the result takes the divisor's sign).
      else left = (u) => {
        const x = a(u);
        const y = b(u);
        return x - Math.floor(x / y) * y;
      };
    }
    return left;
  }

  #unary(): Node {
    if (this.#isOp('-')) {
      this.#take();
      return this.#nest(() => {
        const a = this.#unary();
        return (u) => -a(u);
      });
    }
    return this.#power();
  }

  #power(): Node {
    const base = this.#atom();
    if (!this.#isOp('^')) return base;
    this.#take();
    // Right-associative, binds tighter than unary minus on its left: -2^2 is -(2^2), as Lua.
    const exp = this.#nest(() => this.#unary());
    return (u) => base(u) ** exp(u);
  }

  #atom(): Node {
    const t = this.#take();
    if (t.kind === 'num') {
      const v = Number(t.text);
      return () => v;
    }
    if (t.kind === 'name') {
      if (this.#isOp('(')) return this.#call(t);
      return fieldNode(t.text);
    }
    if (t.kind === 'op' && t.text === '(') {
      const inner = this.#expr();
      this.#expect(')');
      return inner;
    }
    throw new Error(t.kind === 'end' ? 'unexpected end of expression' : `unexpected '${t.text}' at ${t.pos + 1}`);
  }

  #call(name: Token): Node {
    const fname = name.text.startsWith('math.') ? name.text.slice(5) : name.text;
    const f = FUNCS.get(fname);
    if (f === undefined) throw new Error(`unknown function ${name.text}`);
    this.#expect('(');
    const args: Node[] = [];
    if (!this.#isOp(')')) {
      args.push(this.#expr());
      while (this.#isOp(',')) {
        this.#take();
        args.push(this.#expr());
      }
    }
    this.#expect(')');
    if (args.length < f.arity[0] || args.length > f.arity[1]) throw new Error(`wrong number of arguments to ${name.text}`);
    const fn = f.fn;
    if (args.length === 1) {
      const a = args[0]!;
      return (u) => fn(a(u));
    }
    const vals = new Array<number>(args.length);
    // One scratch array per compiled call: evaluation is synchronous, so it is never shared by two requests.
    return (u) => {
      for (let i = 0; i < args.length; i++) vals[i] = args[i]!(u);
      return fn(...vals);
    };
  }
}

export interface CostExpr {
  /** The cost of one response (an integer >= 0), or an error message when the result is not a finite number. */
  evaluate(usage: Record<string, unknown>): number | string;
}

/** Compiles `src`; throws an Error whose message says what is wrong (APISIX: "invalid cost_expr: ..."). */
export function compileCostExpr(src: string): CostExpr {
  if (src.length > MAX_LENGTH) throw new Error(`longer than ${MAX_LENGTH} characters`);
  const root = new Parser(tokenize(src)).parse();
  return {
    evaluate(usage) {
      const r = root(usage);
      if (!Number.isFinite(r)) return 'cost_expr returned non-finite value';
      return r < 0 ? 0 : Math.floor(r + 0.5);
    },
  };
}
