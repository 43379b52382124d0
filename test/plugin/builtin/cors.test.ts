import { describe, expect, it } from 'vitest';
import { compileCors, corsPlugin as def, resolveOrigin } from '../../../src/plugin/builtin/cors.ts';
import { confError, fakeContext, instantiate } from '../helpers.ts';

const origins = (conf: Record<string, unknown>, origin: string | undefined, metadata?: Record<string, unknown>) =>
  resolveOrigin(compileCors(conf as never, metadata as never).origins, origin);

describe('cors origin matching', () => {
  it('handles *, ** and lists', () => {
    expect(origins({ allow_origins: '*' }, 'http://a.com')).toBe('*');
    expect(origins({}, undefined)).toBe('*');
    expect(origins({ allow_origins: '**' }, 'http://a.com')).toBe('http://a.com');
    expect(origins({ allow_origins: '**' }, undefined)).toBe('*');
    const list = { allow_origins: 'http://a.com,https://b.com:8081' };
    expect(origins(list, 'https://b.com:8081')).toBe('https://b.com:8081');
    expect(origins(list, 'http://c.com')).toBeUndefined();
    expect(origins({ allow_origins: 'http://a.com' }, 'http://a.com')).toBe('http://a.com');
    expect(origins({ allow_origins: 'http://a.com' }, 'http://b.com')).toBeUndefined();
  });

  it('allow_origins_by_regex replaces allow_origins', () => {
    const conf = { allow_origins: '*', allow_origins_by_regex: ['.*\\.test\\.com$'] };
    expect(origins(conf, 'http://x.test.com')).toBe('http://x.test.com');
    expect(origins(conf, 'http://x.other.com')).toBeUndefined();
  });

  it('falls back to allow_origins_by_metadata', () => {
    const metadata = { allow_origins: { EX: 'https://ex.com,https://ex2.com', ANY: '*' } };
    const conf = { allow_origins: 'http://a.com', allow_origins_by_metadata: ['EX'] };
    expect(origins(conf, 'https://ex2.com', metadata)).toBe('https://ex2.com');
    expect(origins(conf, 'https://nope.com', metadata)).toBeUndefined();
    expect(origins({ allow_origins: 'http://a.com', allow_origins_by_metadata: ['ANY'] }, 'https://z.com', metadata)).toBe(
      'https://z.com',
    );
  });
});

describe('cors plugin', () => {
  it('validates like APISIX', () => {
    expect(confError(def, { allow_credential: true })).toMatch(/can not set '\*' for other option/);
    expect(
      confError(def, {
        allow_credential: true, allow_origins: 'http://a.com', allow_methods: 'GET', allow_headers: 'x', expose_headers: 'y',
      }),
    ).toBeNull();
    expect(confError(def, { allow_origins: 'not-an-origin' })).not.toBeNull();
    expect(confError(def, { allow_origins_by_regex: ['('] })).not.toBeNull();
    expect(confError(def, { allow_origins: { A: 'http://a.com' } }, 'metadata')).toBeNull();
  });

  it('answers a preflight locally with the CORS headers', () => {
    const inst = instantiate(def, { allow_origins: '**', allow_headers: '**', max_age: 10, allow_methods: '**' });
    const ctx = fakeContext({ method: 'OPTIONS', headers: { origin: 'http://a.com', 'access-control-request-headers': 'x-a' } });
    const r = inst.rewrite!(ctx) as { status: number; headers: Record<string, string> };
    expect(r.status).toBe(200);
    expect(r.headers).toEqual({
      'access-control-allow-origin': 'http://a.com',
      vary: 'Origin',
      'access-control-allow-methods': 'GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE',
      'access-control-max-age': '10',
      'access-control-allow-headers': 'x-a',
    });
    inst.header_filter!(ctx);
    expect(ctx.response.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('adds headers to normal responses in header_filter', () => {
    const inst = instantiate(def, { expose_headers: 'x-e', timing_allow_origins: 'http://a.com' });
    const ctx = fakeContext({ headers: { origin: 'http://a.com' } });
    expect(inst.rewrite!(ctx)).toBeUndefined();
    ctx.response.setHeader('vary', 'Accept');
    inst.header_filter!(ctx);
    const h = ctx.response.headers;
    expect(h['access-control-allow-origin']).toBe('*');
    expect(h['access-control-allow-methods']).toBe('*');
    expect(h['access-control-allow-headers']).toBe('*');
    expect(h['access-control-expose-headers']).toBe('x-e');
    expect(h['access-control-max-age']).toBe('5');
    expect(h['timing-allow-origin']).toBe('http://a.com');
    expect(h.vary).toBe('Accept');
    expect(h['access-control-allow-credentials']).toBeUndefined();
  });

  it('sets nothing for an origin that is not allowed', () => {
    const inst = instantiate(def, { allow_origins: 'http://a.com' });
    const ctx = fakeContext({ headers: { origin: 'http://evil.com' } });
    inst.rewrite!(ctx);
    inst.header_filter!(ctx);
    expect(Object.keys(ctx.response.headers)).toEqual([]);
  });
});
