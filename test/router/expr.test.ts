import { describe, expect, it } from 'vitest';
import { checkExpr, compileExpr, evalExpr, ExprError } from '../../src/router/expr.ts';
import { MapVars } from '../../src/router/vars.ts';
import type { VarValue } from '../../src/router/vars.ts';

function run(rule: unknown, values: Record<string, VarValue>): boolean {
  return evalExpr(compileExpr(rule), new MapVars(values));
}

describe('expr grammar', () => {
  it('empty rule always matches', () => {
    expect(run([], {})).toBe(true);
  });

  it('top-level array of leaves is AND', () => {
    const rule = [
      ['arg_name', '==', 'json'],
      ['arg_weight', '>', 10],
      ['arg_weight', '!', '>', 15],
    ];
    expect(run(rule, { arg_name: 'json', arg_weight: '12' })).toBe(true);
    expect(run(rule, { arg_name: 'json', arg_weight: '16' })).toBe(false);
    expect(run(rule, { arg_name: 'xml', arg_weight: '12' })).toBe(false);
  });

  it('legacy two-element leaf means ==', () => {
    expect(run([['arg_k', 'v']], { arg_k: 'v' })).toBe(true);
    expect(run([['arg_k', 'v']], { arg_k: 'not_hit' })).toBe(false);
    expect(run([['arg_k', 'V']], { arg_k: 'V' })).toBe(true);
  });

  it('AND / OR / !AND / !OR nest', () => {
    const rule = ['!AND', ['arg_name', '==', 'json'], ['OR', ['arg_weight', '>', 10], ['arg_height', '!', '>', 15]]];
    // not (name == json and (weight > 10 or not height > 15))
    expect(run(rule, { arg_name: 'json', arg_weight: '11' })).toBe(false);
    expect(run(rule, { arg_name: 'json', arg_weight: '5', arg_height: '20' })).toBe(true);
    expect(run(rule, { arg_name: 'json', arg_weight: '5', arg_height: '10' })).toBe(false);
    expect(run(rule, { arg_name: 'xml' })).toBe(true);

    const nor = ['!OR', ['a', '==', '1'], ['b', '==', '2']];
    expect(run(nor, { a: '0', b: '0' })).toBe(true);
    expect(run(nor, { a: '1', b: '0' })).toBe(false);

    const or = ['or', ['x', 'HAS', 'a'], ['x', 'HAS', 'c']];
    expect(run(or, { x: ['a', 'b'] })).toBe(true);
    expect(run(or, { x: ['b'] })).toBe(false);
    expect(run(or, { x: ['c'] })).toBe(true);

    const and = ['AND', ['a', '==', '1'], ['AND', ['b', '==', '2'], ['c', '==', '3']]];
    expect(run(and, { a: '1', b: '2', c: '3' })).toBe(true);
    expect(run(and, { a: '1', b: '2', c: '4' })).toBe(false);
  });

  it('nested array of arrays is an implicit AND', () => {
    const rule = ['OR', [['a', '==', '1'], ['b', '==', '2']], ['c', '==', '3']];
    expect(run(rule, { a: '1', b: '2' })).toBe(true);
    expect(run(rule, { a: '1', b: '3' })).toBe(false);
    expect(run(rule, { c: '3' })).toBe(true);
  });

  it('operators are case-insensitive', () => {
    expect(run([['x', 'IN', ['a']]], { x: 'a' })).toBe(true);
    expect(run([['ip', 'IPMATCH', '10.0.0.0/8']], { ip: '10.1.2.3' })).toBe(true);
  });
});

describe('expr operators', () => {
  it('== and ~= on strings and nil', () => {
    expect(run([['arg_k', '==', 'v']], { arg_k: 'v' })).toBe(true);
    expect(run([['arg_k', '~=', 'v']], { arg_k: 'v' })).toBe(false);
    expect(run([['arg_k', '~=', '***']], { arg_k: 'v' })).toBe(true);
    expect(run([['arg_name', '~=', 'jack']], {})).toBe(true);
    expect(run([['arg_k', '~=', null]], { arg_k: 'v' })).toBe(true);
    expect(run([['http_test', '~=', null]], {})).toBe(false);
    expect(run([['http_test', '==', null]], {})).toBe(true);
    expect(run([['http_test', '==', null]], { http_test: null })).toBe(true);
  });

  it('== and ~= with a number on the right coerce the left', () => {
    expect(run([['arg_age', '==', 18]], { arg_age: '18' })).toBe(true);
    expect(run([['arg_age', '==', 18]], { arg_age: '18.0' })).toBe(true);
    expect(run([['arg_age', '==', 18]], { arg_age: 'aa' })).toBe(false);
    expect(run([['arg_age', '~=', 18]], { arg_age: '18' })).toBe(false);
    expect(run([['arg_age', '~=', 18]], { arg_age: '16' })).toBe(true);
    expect(run([['arg_age', '~=', 18]], { arg_age: 'aa' })).toBe(true);
    expect(run([['arg_age', '~=', 18]], {})).toBe(true);
    // a string on the right is a plain compare
    expect(run([['arg_age', '~=', '18']], { arg_age: '18' })).toBe(false);
    expect(run([['arg_age', '==', '18']], { arg_age: '18.0' })).toBe(false);
    // numeric variable values behave like their decimal text
    expect(run([['server_port', '==', '9080']], { server_port: 9080 })).toBe(true);
    expect(run([['server_port', '==', 9080]], { server_port: 9080 })).toBe(true);
  });

  it('== with booleans and tables', () => {
    expect(run([['flag', '==', true]], { flag: true })).toBe(true);
    expect(run([['flag', '==', true]], { flag: 'true' })).toBe(false);
    expect(run([['x', '==', ['a']]], { x: 'a' })).toBe(false);
    expect(run([['x', '~=', ['a']]], { x: 'a' })).toBe(true);
  });

  it('> >= < <= coerce both sides', () => {
    expect(run([['arg_k', '>', 10]], { arg_k: '11' })).toBe(true);
    expect(run([['arg_k', '>', 10]], { arg_k: '9' })).toBe(false);
    expect(run([['arg_k', '>', 10]], {})).toBe(false);
    expect(run([['arg_k', '>', 10]], { arg_k: 'abc' })).toBe(false);
    expect(run([['arg_k', '>', 10]], { arg_k: '' })).toBe(false);
    expect(run([['arg_k', '>', -1]], { arg_k: ' ' })).toBe(false);
    expect(run([['arg_k', '>=', '2']], { arg_k: '2' })).toBe(true);
    expect(run([['arg_k', '>=', 3]], { arg_k: '2' })).toBe(false);
    expect(run([['arg_k', '<=', '2']], { arg_k: '3' })).toBe(false);
    expect(run([['arg_k', '<=', 3]], { arg_k: '3' })).toBe(true);
    expect(run([['arg_k', '<', 3]], { arg_k: '2.5' })).toBe(true);
    expect(run([['arg_k', '<', 3]], { arg_k: '0x2' })).toBe(true);
    expect(run([['arg_k', '<', 3]], { arg_k: '0b1' })).toBe(false);
    expect(run([['arg_k', '>', 'abc']], { arg_k: '5' })).toBe(false);
    expect(run([['arg_k', '!', '>', 'abc']], { arg_k: '5' })).toBe(true);
    expect(run([['k', '!', '>', 10]], { k: 11 })).toBe(false);
    expect(run([['k', '!', '>', 10]], { k: 9 })).toBe(true);
  });

  it('~~ is a PCRE find, ~* is case-insensitive', () => {
    expect(run([['x', '~~', '[a-z]+']], { x: '123abc' })).toBe(true);
    expect(run([['x', '~~', '^[a-z]+$']], { x: '123abc' })).toBe(false);
    expect(run([['x', '~~', 'A']], { x: 'a' })).toBe(false);
    expect(run([['x', '~*', 'A']], { x: 'a' })).toBe(true);
    expect(run([['x', '~*', 'A']], { x: 'b' })).toBe(false);
    expect(run([['x', '~*', 'A']], { x: '' })).toBe(false);
    expect(run([['x', '!', '~*', 'A']], { x: 'A' })).toBe(false);
    expect(run([['x', '!', '~*', 'A']], { x: '' })).toBe(true);
    expect(run([['k', '!', '~~', '[a-z]']], { k: 'a' })).toBe(false);
    expect(run([['k', '!', '~~', '[a-z]']], { k: '9' })).toBe(true);
    expect(run([['arg_name', '~~', '[a-z]{1,4}']], {})).toBe(false);
    expect(run([['arg_name', '~*', '[a-z]{1,4}']], {})).toBe(false);
    expect(run([['n', '~~', '^4\\d\\d$']], { n: 404 })).toBe(true);
  });

  it('translates common PCRE syntax', () => {
    expect(run([['x', '~~', '(?i)^abc']], { x: 'ABCd' })).toBe(true);
    expect(run([['x', '~~', '\\Aab\\z']], { x: 'ab' })).toBe(true);
    expect(run([['x', '~~', '\\Aab\\z']], { x: 'ab\n' })).toBe(false);
    expect(run([['x', '~~', '\\Aab\\Z']], { x: 'ab\n' })).toBe(true);
    expect(run([['x', '~~', '(?P<word>\\w+)-(?P=word)']], { x: 'go-go' })).toBe(true);
    expect(run([['x', '~~', '\\Qa.b\\E']], { x: 'axb' })).toBe(false);
    expect(run([['x', '~~', '\\Qa.b\\E']], { x: 'a.b' })).toBe(true);
    expect(run([['x', '~~', '[]a]']], { x: ']' })).toBe(true);
    expect(run([['x', '~~', 'a\\hb']], { x: 'a\tb' })).toBe(true);
  });

  it('in: the left value is one of the right array', () => {
    const rule = [['arg_k', 'in', ['1', '2']]];
    expect(run(rule, { arg_k: '1' })).toBe(true);
    expect(run(rule, { arg_k: '2' })).toBe(true);
    expect(run(rule, { arg_k: '4' })).toBe(false);
    expect(run(rule, {})).toBe(false);
    expect(run([['k', '!', 'in', [1, 2]]], { k: 3 })).toBe(true);
    expect(run([['k', '!', 'in', [1, 2]]], { k: 1 })).toBe(false);
    expect(run([['k', 'in', [1, 2]]], { k: '1' })).toBe(false); // Lua: "1" ~= 1
    expect(run([['k', 'in', 'abc']], { k: 'abc' })).toBe(false);
  });

  it('has: the left array contains the right value', () => {
    const rule = [['x', 'has', 'a']];
    expect(run(rule, { x: ['a', 'b'] })).toBe(true);
    expect(run(rule, { x: ['a'] })).toBe(true);
    expect(run(rule, { x: ['b'] })).toBe(false);
    expect(run(rule, { x: [] })).toBe(false);
    expect(run(rule, { x: 'a' })).toBe(false);
    expect(run([['k', '!', 'has', 'a']], { k: ['b', 'c'] })).toBe(true);
    expect(run([['k', '!', 'has', 'a']], { k: ['a', 'c'] })).toBe(false);
  });

  it('ipmatch: IPv4/IPv6, CIDR, a single string or a list', () => {
    expect(run([['remote_addr', 'ipmatch', '127.0.0.1']], { remote_addr: '127.0.0.1' })).toBe(true);
    expect(run([['remote_addr', 'ipmatch', ['127.0.0.1']]], { remote_addr: '127.0.0.1' })).toBe(true);
    expect(run([['remote_addr', 'ipmatch', '127.0.0.0/16']], { remote_addr: '127.0.9.1' })).toBe(true);
    expect(run([['remote_addr', 'ipmatch', ['127.0.0.1', '127.0.0.2']]], { remote_addr: '127.0.0.1' })).toBe(true);
    expect(run([['remote_addr', 'ipmatch', ['127.0.0.2', '127.0.0.3']]], { remote_addr: '127.0.0.1' })).toBe(false);
    expect(run([['remote_addr', 'ipmatch', ['fe80::/32']]], { remote_addr: 'fe80::1' })).toBe(true);
    expect(run([['remote_addr', 'ipmatch', ['fe80::/32']]], { remote_addr: 'fe81::1' })).toBe(false);
    expect(run([['remote_addr', 'ipmatch', ['::1']]], { remote_addr: '::1' })).toBe(true);
    expect(run([['remote_addr', 'ipmatch', ['10.0.0.0/8']]], { remote_addr: 'garbage' })).toBe(false);
    expect(run([['remote_addr', 'ipmatch', ['10.0.0.0/8']]], {})).toBe(false);
    expect(run([['http_real_ip', '!', 'ipmatch', ['10.0.0.0/8']]], { http_real_ip: '11.0.0.1' })).toBe(true);
    expect(
      run([['remote_addr', 'ipmatch', ['127.0.0.1']], ['arg_k', '==', 'v']], { remote_addr: '127.0.0.1', arg_k: 'v' }),
    ).toBe(true);
  });

  it('uri_param_ style variables come from the Vars', () => {
    expect(run([['uri_param_id', '==', '42']], { uri_param_id: '42' })).toBe(true);
  });
});

describe('expr compile errors', () => {
  const cases: Array<[unknown, string]> = [
    [[['arg_k', '=', 'v']], "invalid operator '='"],
    [[['arg_k', 'invalid', 10]], "invalid operator 'invalid'"],
    [[['arg_k', 'XX', 10]], "invalid operator 'xx'"],
    [[['arg_k']], 'invalid expression'],
    [[[]], 'rule too short'],
    [[['!', 'arg_k', '==', '1']], "bad 'not' expression"],
    [['OR', ['arg_weight', '>', 10]], 'rule too short'],
    [['OR', ['arg_weight', '>', 10], ['AND']], 'rule too short'],
    [['arg_k', '==', 'v'], 'rule should be wrapped inside brackets'],
    [[['remote_addr', 'ipmatch', null]], 'invalid ip address'],
    [[['remote_addr', 'ipmatch', '']], 'invalid ip address'],
    [[['remote_addr', 'ipmatch', []]], 'invalid ip address'],
    [[['remote_addr', 'ipmatch', ['']]], 'invalid ip address: '],
    [[['remote_addr', 'ipmatch', ['10.0.0.0/33']]], 'invalid ip address: 10.0.0.0/33'],
    [[['remote_addr', 'ipmatch', ['300.0.0.1']]], 'invalid ip address: 300.0.0.1'],
    [[['x', '~~', '(unclosed']], "invalid regex '(unclosed'"],
    [[['x', '~~', 'a++']], "invalid regex 'a++'"],
    [[['x', '~*', '(?>atomic)']], "invalid regex '(?>atomic)'"],
    [[['x', '~~', null]], 'invalid expression'],
    [[[1, '==', 'a']], 'invalid expression'],
    [[['x', true]], 'invalid expression'],
    [['AND', 'x', 'y'], 'invalid expression'],
    [{ a: 1 }, 'invalid expression'],
    ['x', 'invalid expression'],
  ];
  for (const [rule, msg] of cases) {
    it(`${JSON.stringify(rule)} -> ${msg}`, () => {
      expect(() => compileExpr(rule)).toThrow(ExprError);
      const err = checkExpr(rule);
      expect(err).not.toBeNull();
      expect((err as string).startsWith(msg)).toBe(true);
    });
  }

  it('valid rules check clean', () => {
    expect(checkExpr([])).toBeNull();
    expect(checkExpr([['a', '==', 'b']])).toBeNull();
    expect(checkExpr(['AND', ['a', '==', 'b'], ['c', '~=', null]])).toBeNull();
    expect(checkExpr([['a', 'in']])).toBeNull();
    expect(checkExpr([['a', '==', 'b', 'ignored', 'extra']])).toBeNull();
  });

  it('bounds nesting depth', () => {
    let rule: unknown = ['a', '==', 'b'];
    for (let i = 0; i < 100; i++) rule = ['AND', rule, ['a', '==', 'b']];
    expect(checkExpr(rule)).toMatch(/nested too deeply/);
  });
});
