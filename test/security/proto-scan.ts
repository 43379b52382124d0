// Finds computed-key writes (`x[k] = v`, `x[k] ??= v`, `||=`, `&&=`) whose object is an ordinary object (one
// that inherits from Object.prototype): an object literal, or a variable, parameter-less alias or class field
// that is assigned one. Such a write with a client or config key `__proto__` swaps the object's prototype or,
// through a nested walk, reaches Object.prototype itself (the grpc-transcode argsTable bug, c281d5d).
// Syntactic with the binder's scoping (TypeScript's checker resolves identifiers, no type information).
import { readdirSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

export interface Site {
  /** Path relative to the repository root. */
  readonly file: string;
  readonly line: number;
  /** The written expression and operator, e.g. `out[key] =`: the allowlist key with the file. */
  readonly code: string;
}

function listTs(dir: string, out: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) listTs(p, out);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
}

function unwrap(e: ts.Expression): ts.Expression {
  for (;;) {
    if (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isSatisfiesExpression(e) || ts.isNonNullExpression(e) || ts.isTypeAssertionExpression(e)) e = e.expression;
    else return e;
  }
}

const WRITE_OPS = new Set([ts.SyntaxKind.EqualsToken, ts.SyntaxKind.QuestionQuestionEqualsToken, ts.SyntaxKind.BarBarEqualsToken, ts.SyntaxKind.AmpersandAmpersandEqualsToken]);

/** The computed-key writes on ordinary objects in the .ts files below `dirs` (relative to `root`). */
export function scanPrototypeUnsafeWrites(root: string, dirs: readonly string[]): Site[] {
  const files: string[] = [];
  for (const d of dirs) listTs(path.join(root, d), files);
  const program = ts.createProgram(files, { noResolve: true, noLib: true, noEmit: true, allowImportingTsExtensions: true, target: ts.ScriptTarget.ESNext, module: ts.ModuleKind.ESNext });
  const checker = program.getTypeChecker();
  const symbolOf = (e: ts.Expression): ts.Symbol | undefined => {
    const u = unwrap(e);
    if (ts.isIdentifier(u) || (ts.isPropertyAccessExpression(u) && u.expression.kind === ts.SyntaxKind.ThisKeyword)) return checker.getSymbolAtLocation(u);
    return undefined;
  };

  // Ordinary-object symbols: assigned an object literal, or an alias of one (fixpoint over `a = b` edges).
  const plain = new Set<ts.Symbol>();
  const edges: [from: ts.Symbol, to: ts.Symbol][] = [];
  const writes: { sf: ts.SourceFile; node: ts.BinaryExpression; target: ts.ElementAccessExpression }[] = [];
  const assign = (target: ts.Symbol | undefined, value: ts.Expression | undefined) => {
    if (target === undefined || value === undefined) return;
    const v = unwrap(value);
    if (ts.isObjectLiteralExpression(v)) plain.add(target);
    else {
      const from = symbolOf(v);
      if (from !== undefined) edges.push([from, target]);
    }
  };
  const sources = program.getSourceFiles().filter((sf) => files.includes(path.resolve(sf.fileName)) || files.includes(sf.fileName));
  for (const sf of sources) {
    const visit = (n: ts.Node): void => {
      if (ts.isVariableDeclaration(n) && ts.isIdentifier(n.name)) assign(checker.getSymbolAtLocation(n.name), n.initializer);
      else if (ts.isPropertyDeclaration(n) && ts.isIdentifier(n.name)) assign(checker.getSymbolAtLocation(n.name), n.initializer);
      else if (ts.isBinaryExpression(n) && WRITE_OPS.has(n.operatorToken.kind)) {
        const left = unwrap(n.left);
        if (ts.isElementAccessExpression(left)) writes.push({ sf, node: n, target: left });
        else assign(symbolOf(left), n.right);
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  for (let changed = true; changed; ) {
    changed = false;
    for (const [from, to] of edges) {
      if (plain.has(from) && !plain.has(to)) {
        plain.add(to);
        changed = true;
      }
    }
  }

  const out: Site[] = [];
  for (const { sf, node, target } of writes) {
    const key = unwrap(target.argumentExpression);
    if (ts.isStringLiteral(key) || ts.isNumericLiteral(key) || ts.isNoSubstitutionTemplateLiteral(key)) continue;
    // The root of the written chain: `a` in `a[k] = v` and in `a[x][k] = v` (nested tables under `a`).
    let base: ts.Expression = unwrap(target.expression);
    while (ts.isElementAccessExpression(base)) base = unwrap(base.expression);
    const literalBase = ts.isObjectLiteralExpression(base);
    const sym = symbolOf(base);
    if (!literalBase && (sym === undefined || !plain.has(sym))) continue;
    const line = sf.getLineAndCharacterOfPosition(target.getStart(sf)).line + 1;
    out.push({ file: path.relative(root, sf.fileName), line, code: `${target.getText(sf)} ${node.operatorToken.getText(sf)}` });
  }
  return out;
}
