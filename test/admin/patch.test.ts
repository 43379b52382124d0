import { describe, expect, it } from 'vitest';
import { mergePatch, subPathPatch } from '../../src/admin/patch.ts';

describe('mergePatch', () => {
  it('merges objects recursively, replaces arrays and scalars, deletes on null', () => {
    const target = { a: 1, o: { x: 1, y: { z: 2 } }, arr: [1, 2, 3], gone: 'x' };
    const out = mergePatch(target, { a: 2, o: { y: { w: 3 } }, arr: [9], gone: null, added: { k: true } });
    expect(out).toEqual({ a: 2, o: { x: 1, y: { z: 2, w: 3 } }, arr: [9], added: { k: true } });
    expect(target).toEqual({ a: 1, o: { x: 1, y: { z: 2 } }, arr: [1, 2, 3], gone: 'x' });
  });

  it('replaces a scalar with an object and drops nulls inside new objects', () => {
    expect(mergePatch({ a: 1 }, { a: { b: null, c: 1 } })).toEqual({ a: { c: 1 } });
  });
});

describe('subPathPatch', () => {
  it('replaces the value at the path, creating intermediate objects', () => {
    const r = subPathPatch({ upstream: { nodes: { 'a:1': 1 } } }, ['upstream', 'nodes'], { 'b:2': 1 });
    expect(r).toEqual({ ok: true, value: { upstream: { nodes: { 'b:2': 1 } } } });
    const c = subPathPatch({}, ['plugins', 'key-auth', 'header'], 'k');
    expect(c).toEqual({ ok: true, value: { plugins: { 'key-auth': { header: 'k' } } } });
  });

  it('refuses a non-object intermediate', () => {
    expect(subPathPatch({ uri: '/x' }, ['uri', 'a'], 1)).toEqual({ ok: false, error: 'invalid sub-path: /uri' });
  });

  it('deletes on null', () => {
    expect(subPathPatch({ a: { b: 1, c: 2 } }, ['a', 'b'], null)).toEqual({ ok: true, value: { a: { c: 2 } } });
  });
});
