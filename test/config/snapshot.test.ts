// Snapshot building: validation with defaults, skipping invalid items, key order, freezing and reuse.
import { describe, expect, it } from 'vitest';
import type { JsonObject, Kind, StoredItem } from '../../src/config/resources.ts';
import { kindDir } from '../../src/config/resources.ts';
import { buildSnapshot, Snapshot } from '../../src/config/snapshot.ts';
import type { PluginSchemaSource } from '../../src/schema/validator.ts';
import { compileVars, plugins } from '../schema/fixtures.ts';

let rev = 0;
function item(kind: Kind, id: string, value: JsonObject): StoredItem {
  rev++;
  return { kind, id, key: `/apisix/${kindDir(kind)}/${id}`, value, createdIndex: rev, modifiedIndex: rev };
}
const route = (id: string, extra: JsonObject = {}) =>
  item('routes', id, { id, uri: `/${id}`, upstream: { nodes: { '127.0.0.1:80': 1 } }, ...extra });

/** Counts schema lookups of one plugin: one per validation of an object using it. */
function countingSource(): { source: PluginSchemaSource; count: () => number } {
  let n = 0;
  return {
    source: {
      get(name, subsystem) {
        if (name === 'prometheus') n++;
        return plugins.get(name, subsystem);
      },
    },
    count: () => n,
  };
}

describe('buildSnapshot', () => {
  it('validates every item with defaults and exposes them by kind and id', () => {
    const items = [
      route('r1'),
      item('upstreams', 'u1', { nodes: { 'a:80': 1 } }),
      item('consumers', 'jack', { username: 'jack', plugins: { 'key-auth': { key: 'k' } } }),
      item('credentials', 'jack/credentials/c1', { plugins: { 'key-auth': { key: 'k2' } } }),
      item('secrets', 'vault/s1', { uri: 'http://127.0.0.1:8200', prefix: 'kv', token: 't' }),
      item('plugin_metadata', 'http-logger', { id: 'http-logger', log_format: { host: '$host' } }),
    ];
    const snap = buildSnapshot(items, 42, { plugins, compileVars });
    expect(snap.revision).toBe(42);
    expect(snap.errors).toEqual([]);
    expect(snap.get('routes', 'r1')!.value).toMatchObject({ priority: 0, status: 1, upstream: { type: 'roundrobin' } });
    expect(snap.get('routes', 'r1')!.item).toBe(items[0]);
    expect(snap.get('upstreams', 'u1')!.value).toMatchObject({ pass_host: 'pass', scheme: 'http' });
    expect(snap.get('credentials', 'jack/credentials/c1')).toBeDefined();
    expect(snap.get('secrets', 'vault/s1')).toBeDefined();
    expect(snap.get('plugin_metadata', 'http-logger')!.value).toMatchObject({ id: 'http-logger' });
    expect(snap.size('routes')).toBe(1);
    expect(snap.size('ssls')).toBe(0);
    expect(snap.list('ssls')).toEqual([]);
    expect(snap.get('routes', 'nope')).toBeUndefined();
    // Stored objects keep no defaults.
    expect(items[0]!.value).not.toHaveProperty('priority');
  });

  it('skips invalid items and reports them by key without throwing', () => {
    const items = [
      route('a'),
      route('b', { uri: 5 }),
      route('c', { plugins: { 'no-such': {} } }),
      route('d', { vars: ['bad'] }),
      route('e'),
    ];
    const snap = buildSnapshot(items, 1, { plugins, compileVars });
    expect(snap.list('routes').map((s) => s.item.id)).toEqual(['a', 'e']);
    expect(snap.errors).toEqual([
      {
        key: '/apisix/routes/b',
        message: 'invalid configuration: property "uri" validation failed: wrong type: expected string, got number',
      },
      { key: '/apisix/routes/c', message: 'unknown plugin [no-such]' },
      { key: '/apisix/routes/d', message: "failed to validate the 'vars' expression: rule should be wrapped inside brackets" },
    ]);
  });

  it('turns a throwing plugin check into an item error', () => {
    const source: PluginSchemaSource = {
      get: (name) =>
        name === 'boom'
          ? {
              schema: { type: 'object' },
              check() {
                throw new Error('kaboom');
              },
            }
          : undefined,
    };
    const snap = buildSnapshot([route('x', { plugins: { boom: {} } }), route('y')], 1, { plugins: source });
    expect(snap.size('routes')).toBe(1);
    expect(snap.errors).toEqual([{ key: '/apisix/routes/x', message: 'validation failed: kaboom' }]);
  });

  it('lists items in key order whatever the input order', () => {
    const snap = buildSnapshot([route('3'), route('1'), route('2')], 1, { plugins });
    expect(snap.list('routes').map((s) => s.item.id)).toEqual(['1', '2', '3']);
  });

  it('keeps plugin metadata of plugins it does not have, unchecked', () => {
    const snap = buildSnapshot([item('plugin_metadata', 'foreign', { id: 'foreign', x: 1 })], 1, { plugins });
    expect(snap.errors).toEqual([]);
    expect(snap.get('plugin_metadata', 'foreign')!.value).toEqual({ id: 'foreign', x: 1 });
  });

  it('freezes validated values deeply', () => {
    const snap = buildSnapshot([route('r')], 1, { plugins });
    const v = snap.get('routes', 'r')!.value;
    expect(Object.isFrozen(v)).toBe(true);
    expect(Object.isFrozen(v.upstream)).toBe(true);
    expect(Object.isFrozen((v.upstream as JsonObject).nodes)).toBe(true);
    expect(Object.isFrozen(snap.list('routes'))).toBe(true);
    expect(() => {
      (v as Record<string, unknown>).uri = '/x';
    }).toThrow(TypeError);
  });

  it('reuses previous results for identical StoredItem objects and validates only changed ones', () => {
    const { source, count } = countingSource();
    const withPlugin = (id: string) => route(id, { plugins: { prometheus: {} } });
    const items = [withPlugin('a'), withPlugin('b'), withPlugin('c'), route('bad', { uri: 1, plugins: { prometheus: {} } })];
    const first = buildSnapshot(items, 1, { plugins: source });
    expect(count()).toBe(3);
    expect(first.errors).toHaveLength(1);

    const changed = withPlugin('b');
    const next = [items[0]!, changed, items[2]!, items[3]!];
    const second = buildSnapshot(next, 2, { plugins: source, previous: first });
    expect(count()).toBe(4);
    expect(second.get('routes', 'a')).toBe(first.get('routes', 'a'));
    expect(second.get('routes', 'c')!.value).toBe(first.get('routes', 'c')!.value);
    expect(second.get('routes', 'b')!.item).toBe(changed);
    expect(second.errors).toEqual(first.errors);

    // A deleted item disappears; the rest is still reused.
    const third = buildSnapshot([items[0]!, changed], 3, { plugins: source, previous: second });
    expect(count()).toBe(4);
    expect(third.size('routes')).toBe(2);
    expect(third.errors).toEqual([]);
    expect(first.size('routes')).toBe(3);
  });

  it('has an empty snapshot', () => {
    const s = Snapshot.empty(7);
    expect(s.revision).toBe(7);
    expect(s.size('routes')).toBe(0);
    expect(s.errors).toEqual([]);
  });
});
