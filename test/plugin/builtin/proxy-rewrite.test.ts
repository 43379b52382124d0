import { describe, expect, it } from 'vitest';
import { proxyRewritePlugin as def } from '../../../src/plugin/builtin/proxy-rewrite.ts';
import { confError, fakeContext, instantiate } from '../helpers.ts';

function run(conf: Record<string, unknown>, init: Parameters<typeof fakeContext>[0] = {}) {
  const ctx = fakeContext(init);
  const inst = instantiate(def, conf as never);
  expect(inst.rewrite!(ctx)).toBeUndefined();
  return ctx;
}

describe('proxy-rewrite', () => {
  it('validates like APISIX', () => {
    expect(confError(def, { uri: 'no-slash' })).not.toBeNull();
    expect(confError(def, { method: 'FETCH' })).not.toBeNull();
    expect(confError(def, { regex_uri: ['^/a'] })).not.toBeNull();
    expect(confError(def, { regex_uri: ['^/a', '/b', '^/c'] })).toMatch(/pairs/);
    expect(confError(def, { regex_uri: ['(', '/b'] })).toMatch(/invalid regex_uri/);
    expect(confError(def, { host: 'bad host' })).not.toBeNull();
    expect(confError(def, { headers: { set: { 'bad name': 'v' } } })).toMatch(/invalid field character/);
    expect(confError(def, { headers: { 'X-Api': 'v\r\nx' } })).toMatch(/invalid value character/);
    expect(confError(def, { uri: '/x', headers: { add: { 'X-A': 1 }, remove: ['X-B'] } })).toBeNull();
  });

  it('rewrites the uri from a var template and keeps the client query', () => {
    const ctx = run({ uri: '/new/$arg_name' }, { path: '/old', query: 'a=1', vars: { arg_name: 'x y' } });
    expect(ctx.request.path).toBe('/new/x%20y');
    expect(ctx.request.query).toBe('a=1');
    const ctx2 = run({ uri: '/new?own=1' }, { path: '/old', query: 'a=1' });
    expect(ctx2.request.path).toBe('/new');
    expect(ctx2.request.query).toBe('own=1&a=1');
  });

  it('applies the first matching regex_uri pair; captures feed header values', () => {
    const conf = {
      regex_uri: ['^/iresty/(.*)/(.*)', '/$1-$2', '^/theothers/(.*)', '/theothers'],
      headers: { set: { 'X-Cap': '$1' } },
    };
    const ctx = run(conf, { path: '/iresty/hello/world' });
    expect(ctx.request.path).toBe('/hello-world');
    expect(ctx.request.headers['x-cap']).toBe('hello');
    expect(run(conf, { path: '/theothers/a/b' }).request.path).toBe('/theothers');
    expect(run(conf, { path: '/none' }).request.path).toBe('/none');
  });

  it('uri wins over regex_uri', () => {
    expect(run({ uri: '/u', regex_uri: ['^/(.*)', '/r'] }, { path: '/x' }).request.path).toBe('/u');
  });

  it('sets method and host; headers add, remove, set in that order; legacy map sets', () => {
    const ctx = run(
      {
        method: 'POST',
        host: 'up.example.com',
        headers: { add: { 'X-Multi': 'two', 'X-Gone': 'a' }, remove: ['X-Gone', 'X-Drop'], set: { 'X-Addr': '$remote_addr' } },
      },
      { headers: { 'x-multi': 'one', 'x-drop': 'd' }, remoteAddr: '10.0.0.9' },
    );
    expect(ctx.request.method).toBe('POST');
    expect(ctx.request.headers.host).toBe('up.example.com');
    expect(ctx.request.headers['x-multi']).toEqual(['one', 'two']);
    expect(ctx.request.headers['x-gone']).toBeUndefined();
    expect(ctx.request.headers['x-drop']).toBeUndefined();
    expect(ctx.request.headers['x-addr']).toBe('10.0.0.9');
    const legacy = run({ headers: { 'X-Api-Version': 'v2', 'X-Old': '' } }, { headers: { 'x-old': '1' } });
    expect(legacy.request.headers['x-api-version']).toBe('v2');
    expect(legacy.request.headers['x-old']).toBeUndefined();
  });

  it('forwards the raw request uri with use_real_request_uri_unsafe', () => {
    const ctx = run(
      { use_real_request_uri_unsafe: true },
      { path: '/a/b', query: 'q=1', vars: { real_request_uri: '/a/../%2Fb?q=1' } },
    );
    expect(ctx.request.path).toBe('/a/../%2Fb');
    expect(ctx.request.query).toBe('q=1');
  });
});
