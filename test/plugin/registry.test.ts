import { describe, expect, it } from 'vitest';
import { setupBuiltinPlugins, BUILTIN_PLUGINS } from '../../src/plugin/builtin/index.ts';
import { DEFAULT_HTTP_PLUGINS, DEFAULT_STREAM_PLUGINS, PluginRegistry } from '../../src/plugin/registry.ts';
import { stubPlugin } from './helpers.ts';

const noop = () => ({});

describe('PluginRegistry', () => {
  it('rejects a duplicate name within a subsystem', () => {
    const r = new PluginRegistry();
    r.register(stubPlugin('a', 10, noop));
    expect(() => r.register(stubPlugin('a', 11, noop))).toThrow(/duplicate http plugin name: a/);
  });

  it('rejects a duplicate priority within a subsystem, allows it across subsystems', () => {
    const r = new PluginRegistry();
    r.register(stubPlugin('a', 10, noop));
    expect(() => r.register(stubPlugin('b', 10, noop))).toThrow(/duplicate http plugin priority 10: b and a/);
    r.register(stubPlugin('c', 10, noop, { subsystems: ['stream'] }));
    expect(r.definition('c', 'stream')?.name).toBe('c');
  });

  it('accepts the same name as distinct HTTP and stream definitions', () => {
    const r = new PluginRegistry();
    r.register(stubPlugin('x', 5, noop));
    r.register(stubPlugin('x', 5, noop, { subsystems: ['stream'], version: '2' }));
    r.setEnabled(['x'], ['x']);
    expect(r.get('x')?.version).toBe('0.1');
    expect(r.get('x', 'stream')?.version).toBe('2');
  });

  it('enables only the listed plugins, sorted by priority', () => {
    const r = new PluginRegistry();
    for (const [n, p] of [['low', 1], ['high', 100], ['mid', 50]] as const) r.register(stubPlugin(n, p, noop));
    r.setEnabled(['low', 'high'], []);
    expect(r.all('http').map((d) => d.name)).toEqual(['high', 'low']);
    expect(r.get('mid')).toBeUndefined();
    expect(r.known('mid')?.name).toBe('mid');
    expect(r.known('nope')).toBeUndefined();
  });

  it('throws on unknown names unless ignoreUnknown', () => {
    const r = new PluginRegistry();
    r.register(stubPlugin('a', 1, noop));
    expect(() => r.setEnabled(['a', 'ghost'], [])).toThrow(/unknown plugin: ghost/);
    expect(() => r.setEnabled([], ['a'])).toThrow(/unknown stream plugin: a/);
    r.setEnabled(['a', 'ghost'], ['ghost'], true);
    expect(r.all('http').map((d) => d.name)).toEqual(['a']);
  });

  it('enables the registered APISIX defaults until setEnabled is called', () => {
    const r = new PluginRegistry();
    r.register(stubPlugin('cors', 4000, noop));
    r.register(stubPlugin('brotli', 996, noop));
    expect(r.get('cors')).toBeDefined();
    expect(r.get('brotli')).toBeUndefined();
  });

  it('registers the builtins without conflicts; they carry APISIX priorities and default-enabled names', () => {
    const r = new PluginRegistry();
    setupBuiltinPlugins(r);
    const expected: Record<string, number> = {
      'real-ip': 23000, 'request-id': 12015, cors: 4000, 'proxy-rewrite': 1008, redirect: 900,
      'response-rewrite': 899,
    };
    for (const [name, prio] of Object.entries(expected)) {
      expect(r.get(name)?.priority).toBe(prio);
      expect(DEFAULT_HTTP_PLUGINS).toContain(name);
    }
    for (const def of BUILTIN_PLUGINS) {
      for (const sub of def.subsystems) {
        const list = sub === 'http' ? DEFAULT_HTTP_PLUGINS : DEFAULT_STREAM_PLUGINS;
        if (list.includes(def.name)) expect(r.get(def.name, sub)).toBe(def);
      }
    }
  });
});
