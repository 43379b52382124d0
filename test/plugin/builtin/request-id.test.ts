import { describe, expect, it } from 'vitest';
import { ksuid, nanoid, rangeId, requestIdPlugin as def } from '../../../src/plugin/builtin/request-id.ts';
import { confError, fakeContext, instantiate } from '../helpers.ts';

describe('request-id', () => {
  it('validates like APISIX', () => {
    expect(confError(def, { algorithm: 'snowflake2' })).not.toBeNull();
    expect(confError(def, { algorithm: 'range_id', range_id: { length: 5 } })).not.toBeNull();
    expect(confError(def, {})).toBeNull();
  });

  it('generates a uuid, sets it upstream, exposes it and echoes it in the response', () => {
    const inst = instantiate(def, {});
    const ctx = fakeContext();
    inst.rewrite!(ctx);
    const id = ctx.request.headers['x-request-id'] as string;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(ctx.vars.get('request_id')).toBe(id);
    inst.header_filter!(ctx);
    expect(ctx.response.headers['x-request-id']).toBe(id);
  });

  it('keeps a non-empty incoming id and an upstream response header', () => {
    const inst = instantiate(def, { header_name: 'X-Trace' });
    const ctx = fakeContext({ headers: { 'x-trace': 'abc' } });
    inst.rewrite!(ctx);
    expect(ctx.request.headers['x-trace']).toBe('abc');
    ctx.response.setHeader('x-trace', 'from-upstream');
    inst.header_filter!(ctx);
    expect(ctx.response.headers['x-trace']).toBe('from-upstream');
    const empty = fakeContext({ headers: { 'x-trace': '' } });
    inst.rewrite!(empty);
    expect(empty.request.headers['x-trace']).not.toBe('');
  });

  it('omits the response header when include_in_response is false', () => {
    const inst = instantiate(def, { include_in_response: false });
    const ctx = fakeContext();
    inst.rewrite!(ctx);
    inst.header_filter!(ctx);
    expect(ctx.response.headers['x-request-id']).toBeUndefined();
  });

  it('implements the other algorithms', () => {
    expect(nanoid()).toMatch(/^[A-Za-z0-9_-]{21}$/);
    expect(rangeId('abcdef', 12)).toMatch(/^[a-f]{12}$/);
    expect(ksuid()).toMatch(/^[0-9A-Za-z]{27}$/);
    expect(ksuid(1_400_000_000).startsWith('00000')).toBe(true);
    const inst = instantiate(def, { algorithm: 'range_id', range_id: { char_set: 'xyz123', length: 8 } });
    const ctx = fakeContext();
    inst.rewrite!(ctx);
    expect(ctx.request.headers['x-request-id']).toMatch(/^[xyz123]{8}$/);
  });
});
