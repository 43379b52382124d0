import { describe, expect, it } from 'vitest';
import {
  compileNgxRegex,
  compileSubTemplate,
  compileVarTemplate,
  renderTemplate,
  substitute,
  uriSafeEncode,
} from '../../src/plugin/template.ts';
import { MapVars } from '../../src/router/vars.ts';

const vars = new MapVars({ uri: '/a/b', arg_name: 'jo', host: 'h.com', list: ['x', 'y'], n: 3 });

describe('var templates', () => {
  it('interpolates $var and ${var}; unknown variables render empty', () => {
    expect(renderTemplate(compileVarTemplate('$uri/index.html'), vars)).toBe('/a/b/index.html');
    expect(renderTemplate(compileVarTemplate('${uri}x-$arg_name-$nope.'), vars)).toBe('/a/bx-jo-.');
    expect(renderTemplate(compileVarTemplate('$list|$n'), vars)).toBe('x, y|3');
  });

  it('keeps an escaped \\$ literal and constant templates as is', () => {
    const t = compileVarTemplate('/static');
    expect(t.constant).toBe('/static');
    expect(renderTemplate(compileVarTemplate('cost \\$uri'), vars)).toBe('cost \\$uri');
  });

  it('reads numbered captures', () => {
    const m = /^\/(\w+)\/(\w+)/.exec('/a/b');
    expect(renderTemplate(compileVarTemplate('$2-$1-${1}'), vars, m)).toBe('b-a-a');
  });
});

describe('ngx.re.sub templates', () => {
  it('substitutes $N, ${N} and $$; once or globally', () => {
    const t = compileSubTemplate('/$1-${2}$$');
    expect(substitute('/x/iresty/a/b', compileNgxRegex('^/x/iresty/(.*)/(.*)', 'jo'), t)).toBe('/a-b$');
    expect(substitute('aXbXc', compileNgxRegex('X', 'jo'), compileSubTemplate('-'))).toBe('a-bXc');
    expect(substitute('aXbxc', compileNgxRegex('x', 'ijo', true), compileSubTemplate('-'))).toBe('a-b-c');
    expect(substitute('abc', compileNgxRegex('z', 'jo'), compileSubTemplate('-'))).toBeNull();
  });

  it('rejects non-numeric capture references and unsupported options', () => {
    expect(() => compileSubTemplate('/$name')).toThrow(/invalid capturing variable/);
    expect(() => compileNgxRegex('a', 'x')).toThrow(/unsupported regex option/);
    expect(() => compileNgxRegex('(', 'jo')).toThrow();
  });

  it('translates PCRE named groups', () => {
    expect(compileNgxRegex('(?P<id>\\d+)', 'jo').exec('ab12')?.groups?.id).toBe('12');
  });
});

describe('uriSafeEncode', () => {
  it('escapes what NGX_ESCAPE_URI escapes', () => {
    expect(uriSafeEncode('/a b/c?d#e%f')).toBe('/a%20b/c%3Fd%23e%25f');
    expect(uriSafeEncode('/é')).toBe('/%C3%A9');
    const clean = '/a-b_c.d~e!$&\'()*+,;=:@';
    expect(uriSafeEncode(clean)).toBe(clean);
  });
});
