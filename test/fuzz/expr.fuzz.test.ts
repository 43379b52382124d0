// Fuzz target: the vars expression language (src/router/expr.ts, expr-ops.ts, regex.ts) and the CIDR parser
// behind `ipmatch` and route remote_addrs (src/router/cidr.ts).
// Properties: compiling any JSON value either succeeds or fails with an ExprError (checkExpr never throws);
// evaluating a compiled expression against any variable values never throws and gives a boolean; the logic
// operators and `!` obey their algebra (metamorphic checks against the evaluator itself); the IPv4/IPv6
// parsers and IpMatcher agree with node:net (isIPv4/isIPv6, BlockList).
import net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkExpr, compileExpr, evalExpr, ExprError } from '../../src/router/expr.ts';
import { IpMatcher, parseIPv4, parseIPv6 } from '../../src/router/cidr.ts';
import { MapVars, type VarValue } from '../../src/router/vars.ts';
import { params, runs } from './runs.ts';

const NAMES = ['a', 'b', 'arg_x', 'http_host', 'remote_addr'];
const OPS = ['==', '~=', '>', '>=', '<', '<=', '~~', '~*', 'in', 'has', 'ipmatch', 'IN', 'HAS', '=', '!', 'x'];
const IPS = ['127.0.0.1', '10.0.0.0/8', '::1', '2001:db8::/32', '::ffff:10.1.2.3', '1.2.3.4/33', '300.1.1.1', ''];

const scalar = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.constantFrom('1', '01', '1.0', '0x10', '1e3', ' ', '-0', 'nan', 'inf', '10.0.0.1', '::1'),
  fc.integer({ min: -1000, max: 1000 }),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
);
/** Regex operands: PCRE-ish fragments, so both the translator and its error paths are hit. */
const regexText = fc
  .array(fc.constantFrom('a', '.', '*', '+', '?', '(', ')', '[', ']', '^', '$', '\\', '\\Q', '\\E', '\\A', '\\z', '\\Z', '\\h', '(?i)', '(?P<n>', '(?P=n)', '{2}', '|', '(?x)', '(?>', '++'), { maxLength: 8 })
  .map((parts) => parts.join(''));
const right: fc.Arbitrary<unknown> = fc.oneof(
  scalar,
  regexText,
  fc.constantFrom(...IPS),
  fc.array(fc.oneof(scalar, fc.constantFrom(...IPS)), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 3 }), scalar, { maxKeys: 2 }),
);
const leaf: fc.Arbitrary<unknown[]> = fc.oneof(
  fc.tuple(fc.constantFrom(...NAMES), fc.constantFrom(...OPS), right),
  fc.tuple(fc.constantFrom(...NAMES), fc.constant('!'), fc.constantFrom(...OPS), right),
  fc.tuple(fc.constantFrom(...NAMES), right),
  fc.tuple(fc.oneof(fc.constantFrom(...NAMES), scalar), fc.oneof(fc.constantFrom(...OPS), scalar), right),
);
/** Grammar-shaped rules (mostly valid) with occasional junk children. */
const { rule } = fc.letrec<{ rule: unknown[]; node: unknown }>((tie) => ({
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('rule'), scalar),
  rule: fc.oneof(
    { depthSize: 'small' },
    fc.array(tie('node'), { maxLength: 4 }),
    fc.tuple(fc.constantFrom('AND', 'OR', '!AND', '!OR', 'and', '!or', 'XOR'), tie('node'), tie('node')).chain((head) =>
      fc.array(tie('node'), { maxLength: 2 }).map((more) => [...head, ...more]),
    ),
  ),
}));
/** Well-formed non-empty rules by construction (an empty rule is valid only at the top level). */
const validLeaf = fc.oneof(
  fc.tuple(fc.constantFrom(...NAMES), fc.constantFrom('==', '~=', '>', '<=', 'in', 'has'), fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }))),
  fc.tuple(fc.constantFrom(...NAMES), fc.constantFrom('~~', '~*'), fc.constantFrom('^a', 'B$', '1', '(?i)x|y')),
);
const { validRule } = fc.letrec<{ validRule: unknown[]; validNode: unknown }>((tie) => ({
  validNode: fc.oneof({ depthSize: 'small' }, validLeaf, tie('validRule')),
  validRule: fc.oneof(
    { depthSize: 'small' },
    fc.array(tie('validNode'), { minLength: 1, maxLength: 3 }),
    fc.tuple(fc.constantFrom('AND', 'OR', '!AND', '!OR', 'and', '!or'), fc.array(tie('validNode'), { minLength: 2, maxLength: 3 })).map(([op, kids]) => [op, ...kids]),
  ),
}));
const varValue: fc.Arbitrary<VarValue> = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('1', '10', '-3', '1.5', '127.0.0.1', '10.9.8.7', '::1', '2001:db8::5', 'abc'),
  fc.integer({ min: -100, max: 100 }),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }),
);
const vars = fc.dictionary(fc.constantFrom(...NAMES), varValue).map((v) => new MapVars(v));

/** Compiles, asserting the only failure mode is an ExprError. */
function compiles(r: unknown): boolean {
  try {
    compileExpr(r);
    return true;
  } catch (err) {
    expect(err).toBeInstanceOf(ExprError);
    expect((err as Error).message.length).toBeGreaterThan(0);
    return false;
  }
}

const N_COMPILE = runs(3000);
const N_EVAL = runs(3000);
const N_ALGEBRA = runs(1000);
const N_IP = runs(3000);

describe('fuzz: vars expressions', () => {
  it(`compile of arbitrary JSON fails only with ExprError (${N_COMPILE} inputs)`, () => {
    fc.assert(
      fc.property(fc.oneof(rule, fc.jsonValue({ maxDepth: 4 })), (r) => {
        const ok = compiles(r);
        const msg = checkExpr(r);
        expect(msg === null).toBe(ok);
      }),
      params(N_COMPILE),
    );
  });

  it(`evaluation never throws and yields a boolean (${N_EVAL} inputs)`, () => {
    fc.assert(
      fc.property(rule, vars, (r, v) => {
        if (!compiles(r)) return;
        const out = evalExpr(compileExpr(r), v);
        expect(typeof out).toBe('boolean');
      }),
      params(N_EVAL),
    );
  });

  it(`logic operators and negation obey their algebra (${N_ALGEBRA} inputs)`, () => {
    fc.assert(
      fc.property(validRule, validRule, vars, (x, y, v) => {
        const ev = (r: unknown): boolean => evalExpr(compileExpr(r), v);
        expect(checkExpr(x)).toBeNull();
        const a = ev(x);
        const b = ev(y);
        expect(ev(['AND', x, y])).toBe(a && b);
        expect(ev(['OR', x, y])).toBe(a || b);
        expect(ev(['!AND', x, y])).toBe(!(a && b));
        expect(ev(['!OR', x, y])).toBe(!(a || b));
        expect(ev([x, y])).toBe(a && b);
      }),
      params(N_ALGEBRA),
    );
  });

  it(`'!' and '~=' negate their leaf (${N_ALGEBRA} inputs)`, () => {
    fc.assert(
      fc.property(fc.constantFrom(...NAMES), fc.constantFrom('==', '>', '>=', '<', '<=', 'in', 'has', '~~', 'ipmatch'), right, vars, (name, op, r, v) => {
        const plain = [[name, op, r]];
        if (!compiles(plain)) return;
        const base = evalExpr(compileExpr(plain), v);
        expect(evalExpr(compileExpr([[name, '!', op, r]]), v)).toBe(!base);
        if (op === '==') expect(evalExpr(compileExpr([[name, '~=', r]]), v)).toBe(!base);
      }),
      params(N_ALGEBRA),
    );
  });

  it(`string and number comparisons agree with a reference (${N_ALGEBRA} inputs)`, () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), fc.integer({ min: -50, max: 50 }), fc.integer({ min: -50, max: 50 }), (s, t, m, n) => {
        const v = new MapVars({ s, n: String(m) });
        const ev = (r: unknown): boolean => evalExpr(compileExpr(r), v);
        expect(ev([['s', '==', t]])).toBe(s === t);
        expect(ev([['s', 'in', [t, 'zz']]])).toBe(s === t || s === 'zz');
        expect(ev([['n', '>', n]])).toBe(m > n);
        expect(ev([['n', '<=', String(n)]])).toBe(m <= n);
        expect(ev([['n', '==', n]])).toBe(m === n);
      }),
      params(N_ALGEBRA),
    );
  });
});

const octet = fc.oneof(fc.integer({ min: 0, max: 255 }).map(String), fc.constantFrom('256', '01', '', '-1', '1a', '00'));
const v4Text = fc.oneof(
  fc.tuple(octet, octet, octet, octet).map((o) => o.join('.')),
  fc.ipV4(),
  fc.ipV4Extended(),
  fc.array(octet, { maxLength: 6 }).map((o) => o.join('.')),
);
const v6Text = fc.oneof(
  fc.ipV6(),
  fc.array(fc.oneof(fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEFg'), maxLength: 5 }), fc.constantFrom('', '::', '1.2.3.4', 'ffff')), { maxLength: 10 }).map((g) => g.join(':')),
);
const ipText = fc.oneof(v4Text, v6Text, fc.string({ maxLength: 12 }));
const cidr = fc.oneof(
  fc.tuple(fc.oneof(fc.ipV4(), v4Text), fc.option(fc.integer({ min: 0, max: 40 }))).map(([a, b]) => (b === null ? a : `${a}/${b}`)),
  fc.tuple(fc.ipV6(), fc.option(fc.integer({ min: 0, max: 130 }))).map(([a, b]) => (b === null ? a : `${a}/${b}`)),
  fc.string({ maxLength: 10 }),
);

/** node:net's verdict for a CIDR entry as IpMatcher.check should give it (no zone ids, canonical prefix). */
function nodeAccepts(entry: string): boolean {
  const [addr, bits, extra] = entry.split('/');
  if (extra !== undefined || addr === undefined || addr.includes('%')) return false;
  const fam = net.isIPv4(addr) ? 4 : net.isIPv6(addr) ? 6 : 0;
  if (fam === 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (fam === 4 ? 32 : 128);
}

describe('fuzz: IP and CIDR parsing (differential against node:net)', () => {
  it(`parseIPv4/parseIPv6 accept exactly what node:net accepts (${N_IP} inputs)`, () => {
    const words = new Uint32Array(4);
    const groups = new Uint16Array(8);
    fc.assert(
      fc.property(ipText, (s) => {
        expect(parseIPv4(s) >= 0).toBe(net.isIPv4(s));
        if (!s.includes('%')) expect(parseIPv6(s, words, groups)).toBe(net.isIPv6(s));
      }),
      params(N_IP),
    );
  });

  it(`IpMatcher agrees with BlockList on validity and membership (${N_IP} inputs)`, () => {
    fc.assert(
      fc.property(fc.array(cidr, { minLength: 1, maxLength: 3 }), fc.array(fc.oneof(fc.ipV4(), fc.ipV6(), ipText), { maxLength: 4 }), (entries, probes) => {
        const valid = entries.every((e) => IpMatcher.check(e) === null);
        expect(valid).toBe(entries.every(nodeAccepts));
        if (!valid) return;
        const m = IpMatcher.compile(entries);
        // resty.ipmatcher semantics: IPv4 text only meets IPv4 rules, IPv6 text meets IPv6 rules and, when
        // IPv4-mapped, the IPv4 rules. node's BlockList maps IPv4 into IPv6 rules too, so keep two lists.
        const v4 = new net.BlockList();
        const v6 = new net.BlockList();
        for (const e of entries) {
          const [addr, bits] = e.split('/') as [string, string | undefined];
          const [list, fam] = net.isIPv4(addr) ? [v4, 'ipv4' as const] : [v6, 'ipv6' as const];
          if (bits === undefined) list.addAddress(addr, fam);
          else list.addSubnet(addr, Number(bits), fam);
        }
        for (const p of probes) {
          if (p.includes('%')) continue;
          let want = false;
          if (net.isIPv4(p)) want = v4.check(p, 'ipv4');
          else if (net.isIPv6(p)) {
            const mapped = new net.SocketAddress({ address: p, family: 'ipv6' }).address;
            const tail = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(mapped) ?? /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(mapped);
            let embedded: string | null = null;
            if (tail !== null && tail.length === 2) embedded = tail[1]!;
            else if (tail !== null) {
              const hi = parseInt(tail[1]!, 16);
              const lo = parseInt(tail[2]!, 16);
              embedded = `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
            }
            want = v6.check(p, 'ipv6') || (embedded !== null && v4.check(embedded, 'ipv4'));
          }
          expect(m.match(p), `${p} in ${entries.join(',')}`).toBe(want);
        }
      }),
      params(N_IP),
    );
  });
});
