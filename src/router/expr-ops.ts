// Comparison operators of the lua-resty-expr v1 language, one registry entry each. An operator compiles its
// right-hand value once into a test function plus a precomputed argument; evaluation only calls `test`.
// Semantics follow lua-resty-expr over nginx variables (which are strings): a numeric variable value is
// treated as its decimal text where a string is expected. JSON null on the right is nil.
import type { VarValue } from './vars.ts';
import { IpMatcher } from './cidr.ts';
import { compilePcre, RegexError } from './regex.ts';

export class ExprError extends Error {
  override readonly name = 'ExprError';
}

/** hot path: a test must not allocate. */
export type TestFn = (left: VarValue, arg: never) => boolean;

export interface CompiledOperand {
  readonly test: TestFn;
  readonly arg: unknown;
  /** The operator is the negation of `test` (`~=` is `not ==`). */
  readonly invert: boolean;
}

export interface OperatorDef {
  /** `right` is undefined for nil (absent or JSON null). Throws ExprError for an unusable right value. */
  compile(right: unknown): CompiledOperand;
}

const registry = new Map<string, OperatorDef>();

export function registerOperator(name: string, def: OperatorDef): void {
  if (registry.has(name)) throw new Error(`expression operator '${name}' registered twice`);
  registry.set(name, def);
}

/** `name` must already be lower-cased. */
export function lookupOperator(name: string): OperatorDef | undefined {
  return registry.get(name);
}

/** The canonical number a decimal string stands for, or NaN when String(n) would not give `s` back. */
function canonicalNumber(s: string): number {
  const n = Number(s);
  return s.length > 0 && String(n) === s ? n : NaN;
}

/** hot path: Lua `tonumber` for variable values: NaN for nil, booleans, arrays and non-numeric strings. */
export function toNumber(v: VarValue): number {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string' || v.length === 0) return NaN;
  const n = Number(v);
  if (n === 0 && v.trim() === '') return NaN;
  if (n === n && v.length > 1 && v.charCodeAt(0) === 48) {
    const c = v.charCodeAt(1) | 0x20;
    if (c === 98 || c === 111) return NaN; // 0b / 0o prefixes are not Lua numbers
  }
  return n;
}

interface StringArg {
  readonly s: string;
  /** The number whose decimal text is `s`, NaN if none. */
  readonly n: number;
}

function never(): boolean {
  return false;
}
function isNil(left: VarValue): boolean {
  return left === undefined || left === null;
}
function eqString(left: VarValue, arg: StringArg): boolean {
  if (typeof left === 'string') return left === arg.s;
  return typeof left === 'number' && left === arg.n;
}
function eqNumber(left: VarValue, arg: number): boolean {
  return toNumber(left) === arg;
}
function eqBoolean(left: VarValue, arg: boolean): boolean {
  return left === arg;
}
function gt(left: VarValue, arg: number): boolean {
  return toNumber(left) > arg;
}
function ge(left: VarValue, arg: number): boolean {
  return toNumber(left) >= arg;
}
function lt(left: VarValue, arg: number): boolean {
  return toNumber(left) < arg;
}
function le(left: VarValue, arg: number): boolean {
  return toNumber(left) <= arg;
}
function regexFind(left: VarValue, arg: RegExp): boolean {
  if (typeof left === 'string') return arg.test(left);
  return typeof left === 'number' && arg.test(String(left));
}

interface InArg {
  readonly strings: Set<string>;
  /** Number elements plus the numbers canonical numeric string elements stand for. */
  readonly numbers: Set<number>;
  readonly booleans: Set<boolean>;
}
function inList(left: VarValue, arg: InArg): boolean {
  if (typeof left === 'string') return arg.strings.has(left);
  if (typeof left === 'number') return arg.numbers.has(left);
  if (typeof left === 'boolean') return arg.booleans.has(left);
  return false;
}
function hasElement(left: VarValue, arg: string | number | boolean): boolean {
  return Array.isArray(left) && (left as readonly unknown[]).includes(arg);
}
function ipMatch(left: VarValue, arg: IpMatcher): boolean {
  return typeof left === 'string' && arg.match(left);
}

function operand(test: (left: VarValue, arg: never) => boolean, arg: unknown, invert = false): CompiledOperand {
  return { test, arg, invert };
}

function compileEquality(right: unknown, invert: boolean): CompiledOperand {
  if (right === undefined) return operand(isNil, null, invert);
  if (typeof right === 'number') return operand(eqNumber, right, invert);
  if (typeof right === 'string') return operand(eqString, { s: right, n: canonicalNumber(right) }, invert);
  if (typeof right === 'boolean') return operand(eqBoolean, right, invert);
  return operand(never, null, invert); // a table on the right never equals a variable value
}

function compileOrder(test: (left: VarValue, arg: number) => boolean): OperatorDef {
  return {
    compile(right) {
      const n = typeof right === 'number' || typeof right === 'string' ? toNumber(right) : NaN;
      return n === n ? operand(test, n) : operand(never, null);
    },
  };
}

function compileRegex(caseless: boolean): OperatorDef {
  return {
    compile(right) {
      if (typeof right !== 'string' && typeof right !== 'number') {
        throw new ExprError('invalid expression: the regex operand must be a string');
      }
      const pattern = String(right);
      try {
        return operand(regexFind, compilePcre(pattern, caseless));
      } catch (err) {
        if (err instanceof RegexError) throw new ExprError(`invalid regex '${pattern}': ${err.message}`);
        throw err;
      }
    },
  };
}

registerOperator('==', { compile: (right) => compileEquality(right, false) });
registerOperator('~=', { compile: (right) => compileEquality(right, true) });
registerOperator('>', compileOrder(gt));
registerOperator('>=', compileOrder(ge));
registerOperator('<', compileOrder(lt));
registerOperator('<=', compileOrder(le));
registerOperator('~~', compileRegex(false));
registerOperator('~*', compileRegex(true));

registerOperator('in', {
  compile(right) {
    if (!Array.isArray(right)) return operand(never, null);
    const arg: InArg = { strings: new Set(), numbers: new Set(), booleans: new Set() };
    for (const el of right as unknown[]) {
      if (typeof el === 'string') {
        arg.strings.add(el);
        const n = canonicalNumber(el);
        if (n === n) arg.numbers.add(n);
      } else if (typeof el === 'number') {
        arg.numbers.add(el);
      } else if (typeof el === 'boolean') {
        arg.booleans.add(el);
      }
    }
    return operand(inList, arg);
  },
});

registerOperator('has', {
  compile(right) {
    if (typeof right === 'string' || typeof right === 'number' || typeof right === 'boolean') {
      return operand(hasElement, right);
    }
    return operand(never, null);
  },
});

registerOperator('ipmatch', {
  compile(right) {
    if (right === undefined || right === '' || (Array.isArray(right) && right.length === 0)) {
      throw new ExprError('invalid ip address');
    }
    const list = Array.isArray(right) ? (right as unknown[]) : [right];
    for (const entry of list) {
      const msg = IpMatcher.check(entry);
      if (msg !== null) throw new ExprError(msg);
    }
    return operand(ipMatch, IpMatcher.compile(list as string[]));
  },
});
