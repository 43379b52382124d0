import { describe, expect, it } from 'vitest';
import { compileUserRegex, type UserRegex } from '../../src/plugin/user-regex.ts';

function compiled(p: string, ci = false): UserRegex {
  const r = compileUserRegex(p, ci);
  if (typeof r === 'string') throw new Error(r);
  return r;
}

describe('user regexes', () => {
  it('keep find semantics of ordinary patterns', () => {
    expect(compiled('root.exe').test('/x/root.exe?a')).toBe(true);
    expect(compiled('^/admin').test('/x/admin')).toBe(false);
    expect(compiled('(?<=/)api').test('/api')).toBe(true);
    expect(compiled('a{2,16}').test('aa')).toBe(true);
  });

  it('refuse what the linear engine cannot run, naming the pattern', () => {
    for (const p of ['(a)\\1', '(?=x)x', '(?!x)y', 'a{2,17}', '\\k<n>(?<n>a)']) {
      expect(compileUserRegex(p)).toMatch(/is not allowed: it cannot be matched in linear time/);
    }
    expect(compileUserRegex('(?i)abc')).toMatch(/^invalid regular expression "\(\?i\)abc"/);
  });

  it('case-insensitive matching lower-cases literals but not escapes', () => {
    const r = compiled('^/Admin\\b\\S*\\.PHP$', true);
    expect(r.test('/ADMIN/x.php')).toBe(true);
    expect(r.test('/admin x.php')).toBe(false);
    expect(compiled('\\W', true).test('a')).toBe(false);
    expect(compiled('[A-Z]+\\d', true).test('abc1')).toBe(true);
  });

  it('answer catastrophic-backtracking inputs instead of hanging (linear fallback)', () => {
    const cases: [string, string][] = [
      ['(a+)+$', `${'a'.repeat(50_000)}!`],
      ['^(\\w+\\s?)+$', `${'word '.repeat(5_000)}!`],
      ['(x|xx)+y', 'x'.repeat(20_000)],
      ['.*.*.*=.*;', 'k'.repeat(3_000)],
    ];
    for (const [p, s] of cases) {
      const r = compiled(p);
      // Warm up so the regex is tiered up to native code first: the fallback must still apply.
      for (let i = 0; i < 2_000; i++) r.test(`aa${i}`);
      const t0 = performance.now();
      expect(r.test(s)).toBe(false);
      expect(performance.now() - t0).toBeLessThan(3_000);
    }
  });
});
