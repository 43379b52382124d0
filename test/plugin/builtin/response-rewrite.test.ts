import { describe, expect, it } from 'vitest';
import {
  MAX_FILTER_BODY,
  responseRewritePlugin as def,
} from '../../../src/plugin/builtin/response-rewrite.ts';
import { confError, fakeContext, instantiate } from '../helpers.ts';

describe('response-rewrite', () => {
  it('validates like APISIX', () => {
    expect(confError(def, { body: 'x', filters: [{ regex: 'a', replace: 'b' }] })).not.toBeNull();
    expect(confError(def, { status_code: 600 })).not.toBeNull();
    expect(confError(def, { body: '!!', body_base64: true })).toMatch(/base64/);
    expect(confError(def, { vars: [['status', 'bogus', 1]] })).toMatch(/invalid operator/);
    expect(confError(def, { filters: [{ regex: '(', replace: 'b' }] })).not.toBeNull();
    expect(confError(def, { headers: { add: ['X-A: 1'], set: { 'X-B': 2 }, remove: ['X-C'] } })).toBeNull();
  });

  it('replaces status, body and headers (add, remove, set)', () => {
    const inst = instantiate(def, {
      status_code: 201,
      body: 'aGVsbG8=',
      body_base64: true,
      headers: { add: ['X-Multi: b'], remove: ['X-Server'], set: { 'X-Addr': '$remote_addr' } },
    });
    const ctx = fakeContext();
    ctx.response.setHeader('x-multi', 'a');
    ctx.response.setHeader('x-server', 's');
    inst.header_filter!(ctx);
    expect(ctx.response.status).toBe(201);
    expect(ctx.response.body?.toString()).toBe('hello');
    expect(ctx.response.headers['x-multi']).toEqual(['a', 'b']);
    expect(ctx.response.headers['x-server']).toBeUndefined();
    expect(ctx.response.headers['x-addr']).toBe('127.0.0.1');
  });

  it('applies only when vars match', () => {
    const inst = instantiate(def, { status_code: 200, vars: [['status', '==', 500]] });
    const miss = fakeContext({ vars: { status: 404 } });
    miss.response.status = 404;
    inst.header_filter!(miss);
    expect(miss.response.status).toBe(404);
    const hit = fakeContext({ vars: { status: 500 } });
    hit.response.status = 500;
    inst.header_filter!(hit);
    expect(hit.response.status).toBe(200);
  });

  it('filters the whole body with regex substitutions', () => {
    const inst = instantiate(def, {
      filters: [
        { regex: 'world', replace: 'there', scope: 'global' },
        { regex: '(\\d+)', replace: '<$1>' },
      ],
    });
    const ctx = fakeContext();
    ctx.response.setHeader('content-length', '30');
    inst.header_filter!(ctx);
    expect(ctx.response.headers['content-length']).toBeUndefined();
    expect(inst.body_filter!(ctx, Buffer.from('hello world 1 '), false)).toBeNull();
    expect(inst.body_filter!(ctx, Buffer.from('world 22'), true)?.toString()).toBe('hello there <1> there 22');
  });

  it('passes encoded or oversized bodies through unchanged', () => {
    const inst = instantiate(def, { filters: [{ regex: 'a', replace: 'b' }] });
    const gz = fakeContext();
    gz.response.setHeader('content-encoding', 'gzip');
    inst.header_filter!(gz);
    expect(inst.body_filter!(gz, Buffer.from('aaa'), true)?.toString()).toBe('aaa');
    const big = fakeContext();
    inst.header_filter!(big);
    expect(inst.body_filter!(big, Buffer.from('a'), false)).toBeNull();
    const out = inst.body_filter!(big, Buffer.alloc(MAX_FILTER_BODY, 'a'), false);
    expect(out?.length).toBe(MAX_FILTER_BODY + 1);
    expect(inst.body_filter!(big, Buffer.from('a'), true)?.toString()).toBe('a');
  });
});
