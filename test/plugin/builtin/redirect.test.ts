import { describe, expect, it } from 'vitest';
import { compileRedirect, computeRedirect, redirectPlugin as def } from '../../../src/plugin/builtin/redirect.ts';
import { MapVars, type VarValue } from '../../../src/router/vars.ts';
import { confError, fakeContext, instantiate } from '../helpers.ts';

function redirect(conf: Record<string, unknown>, vars: Record<string, VarValue>, attr?: Record<string, number>) {
  return computeRedirect(compileRedirect({ ret_code: 302, ...conf } as never, attr), new MapVars(vars));
}

describe('redirect', () => {
  it('validates like APISIX', () => {
    expect(confError(def, { uri: '/x', regex_uri: ['a', 'b'] })).not.toBeNull();
    expect(confError(def, {})).not.toBeNull();
    expect(confError(def, { http_to_https: true, append_query_string: true })).toMatch(
      /only one of `http_to_https` and `append_query_string`/,
    );
    expect(confError(def, { regex_uri: ['(', '/x'] })).toMatch(/invalid regex_uri/);
    expect(confError(def, { uri: '/x', ret_code: 199 })).not.toBeNull();
    expect(confError(def, { uri: '/x' })).toBeNull();
  });

  it('http_to_https: 301 for GET/HEAD, 308 otherwise, only for plain http', () => {
    const base = { host: 'foo.com', request_uri: '/p?q=1', scheme: 'http', request_method: 'GET' };
    expect(redirect({ http_to_https: true }, base)).toEqual({ status: 301, location: 'https://foo.com/p?q=1' });
    expect(redirect({ http_to_https: true }, { ...base, request_method: 'POST' })?.status).toBe(308);
    expect(redirect({ http_to_https: true }, { ...base, scheme: 'https' })).toBeNull();
    expect(redirect({ http_to_https: true }, { ...base, http_x_forwarded_proto: 'HTTPS' })).toBeNull();
    expect(redirect({ http_to_https: true }, base, { https_port: 9443 })?.location).toBe('https://foo.com:9443/p?q=1');
  });

  it('uri templates, ret_code, encode_uri and append_query_string', () => {
    expect(redirect({ uri: '$uri/index.html', ret_code: 301 }, { uri: '/a' })).toEqual({
      status: 301,
      location: '/a/index.html',
    });
    expect(redirect({ uri: '/a b', encode_uri: true }, {})?.location).toBe('/a%20b');
    expect(redirect({ uri: '/t', append_query_string: true }, { args: 'x=1' })?.location).toBe('/t?x=1');
    expect(redirect({ uri: '/t?y=2', append_query_string: true }, { args: 'x=1' })?.location).toBe('/t?y=2&x=1');
    expect(redirect({ uri: '/t', append_query_string: true }, { args: '' })?.location).toBe('/t');
  });

  it('regex_uri redirects only on a match', () => {
    const conf = { regex_uri: ['^/iresty/(.*)/(.*)/(.*)', '/$1-$2-$3'] };
    expect(redirect(conf, { uri: '/iresty/a/b/c' })?.location).toBe('/a-b-c');
    expect(redirect(conf, { uri: '/other' })).toBeNull();
  });

  it('answers in rewrite with a Location header and the default 302', () => {
    const inst = instantiate(def, { uri: '/elsewhere' });
    expect(inst.rewrite!(fakeContext())).toEqual({ status: 302, headers: { Location: '/elsewhere' } });
  });
});
