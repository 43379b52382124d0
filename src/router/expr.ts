// The lua-resty-expr v1 expression language (route `vars`, `_meta.filter`, traffic-split, logger filters).
// Grammar:
//   rule  := []                                 always true
//          | [node, node, ...]                  implicit AND (the route `vars` form)
//          | ["AND"|"OR"|"!AND"|"!OR", node, node, ...]   (case-insensitive, at least two children)
//   node  := rule | leaf
//   leaf  := [var, op, value] | [var, "!", op, value] | [var, value]   (the last is legacy `==`)
// Compile errors use lua-resty-expr's messages ("invalid operator 'x'", "rule too short", ...), so Admin API
// errors read like APISIX's. Beyond APISIX, invalid regexes are rejected at compile time.
// Differences kept on purpose: a legacy `[var, value]` leaf compares against the value as written (lua-resty-expr
// lower-cases it), and non-string variable names are rejected instead of silently never matching.
import type { Vars } from './vars.ts';
import { ExprError, lookupOperator } from './expr-ops.ts';
import type { TestFn } from './expr-ops.ts';

export { ExprError } from './expr-ops.ts';

/** An expression compiled by `compileExpr`; evaluate it with `evalExpr`. */
export interface CompiledExpr {
  readonly kind: number;
}

const LEAF = 0;
const LOGIC = 1;
/** Nesting bound: keeps compile and evaluation recursion finite for hostile input. */
const MAX_DEPTH = 64;
const LOGIC_OPS = new Set(['AND', 'OR', '!AND', '!OR']);

class Leaf implements CompiledExpr {
  readonly kind = LEAF;
  readonly name: string;
  readonly test: TestFn;
  readonly arg: never;
  readonly negate: boolean;
  constructor(name: string, test: TestFn, arg: unknown, negate: boolean) {
    this.name = name;
    this.test = test;
    this.arg = arg as never;
    this.negate = negate;
  }
}

class Logic implements CompiledExpr {
  readonly kind = LOGIC;
  readonly isAnd: boolean;
  readonly negate: boolean;
  readonly children: readonly Node[];
  constructor(isAnd: boolean, negate: boolean, children: Node[]) {
    this.isAnd = isAnd;
    this.negate = negate;
    this.children = children;
  }
}

type Node = Leaf | Logic;

const ALWAYS = new Logic(true, false, []);

function compileLeaf(expr: readonly unknown[]): Leaf {
  let name: unknown;
  let op: unknown;
  let right: unknown;
  let rightPresent: boolean;
  let negate = false;
  if (expr.length === 4) {
    if (expr[1] !== '!') throw new ExprError("bad 'not' expression");
    negate = true;
    [name, , op, right] = expr;
    rightPresent = true;
  } else {
    [name, op, right] = expr;
    rightPresent = expr.length >= 3;
  }

  let opName: string | undefined;
  if (typeof op === 'string') opName = op.toLowerCase();
  else if (typeof op === 'number') opName = String(op);
  else if (op !== undefined) throw new ExprError('invalid expression');

  if (!rightPresent && (opName === undefined || lookupOperator(opName) === undefined)) {
    if (op === undefined) throw new ExprError('invalid expression');
    right = op;
    opName = '==';
  }
  if (typeof name !== 'string' || name.length === 0 || opName === undefined) {
    throw new ExprError('invalid expression');
  }
  const def = lookupOperator(opName);
  if (def === undefined) throw new ExprError(`invalid operator '${opName}'`);
  const compiled = def.compile(right === null ? undefined : right);
  return new Leaf(name, compiled.test, compiled.arg, negate !== compiled.invert);
}

function compileNode(rule: unknown, depth: number): Node {
  if (depth > MAX_DEPTH) throw new ExprError('invalid expression: nested too deeply');
  if (!Array.isArray(rule)) throw new ExprError('invalid expression');
  const items = rule as readonly unknown[];
  if (items.length === 0) throw new ExprError('rule too short');
  const first = items[0];
  if (typeof first === 'object' && first !== null) {
    return new Logic(true, false, items.map((child) => compileNode(child, depth + 1)));
  }
  if (typeof first === 'string') {
    const logic = first.toUpperCase();
    if (LOGIC_OPS.has(logic)) {
      if (items.length <= 2) throw new ExprError('rule too short');
      const children: Node[] = [];
      for (let i = 1; i < items.length; i++) children.push(compileNode(items[i], depth + 1));
      return new Logic(logic.endsWith('AND'), logic.startsWith('!'), children);
    }
  }
  return compileLeaf(items);
}

/** Compiles an expression at config time. Throws ExprError with a precise message. */
export function compileExpr(rule: unknown): CompiledExpr {
  if (!Array.isArray(rule)) throw new ExprError('invalid expression: rule must be an array');
  if (rule.length === 0) return ALWAYS;
  const first: unknown = rule[0];
  if (typeof first !== 'object' || first === null) {
    if (typeof first !== 'string' || !LOGIC_OPS.has(first.toUpperCase())) {
      throw new ExprError('rule should be wrapped inside brackets');
    }
  }
  return compileNode(rule, 0);
}

/** The compile error message for `rule`, or null when it is valid (for the schema validator). */
export function checkExpr(rule: unknown): string | null {
  try {
    compileExpr(rule);
    return null;
  } catch (err) {
    if (err instanceof ExprError) return err.message;
    throw err;
  }
}

function evalNode(node: Node, vars: Vars): boolean {
  // hot path
  if (node.kind === LEAF) return node.test(vars.get(node.name), node.arg) !== node.negate;
  const children = node.children;
  if (node.isAnd) {
    for (let i = 0; i < children.length; i++) {
      if (!evalNode(children[i], vars)) return node.negate;
    }
    return !node.negate;
  }
  for (let i = 0; i < children.length; i++) {
    if (evalNode(children[i], vars)) return !node.negate;
  }
  return node.negate;
}

/** hot path: evaluates a compiled expression; never throws unless `vars.get` does; allocates nothing. */
export function evalExpr(expr: CompiledExpr, vars: Vars): boolean {
  return evalNode(expr as Node, vars);
}

/** Whether `expr` is the always-true empty rule (callers may skip evaluating it). */
export function isAlwaysTrue(expr: CompiledExpr): boolean {
  return expr === ALWAYS;
}
