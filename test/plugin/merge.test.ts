import { describe, expect, it } from 'vitest';
import { consumerPluginNames, mergeConsumerPlugins, mergeRoutePlugins } from '../../src/plugin/merge.ts';

const conf = (from: string) => ({ from });

describe('merge precedence: consumer > consumer_group > route > plugin_config > service', () => {
  const layers = ['service', 'pluginConfig', 'route', 'group', 'consumer'] as const;
  // For every subset of layers configuring plugin `p`, the highest layer wins with its whole conf.
  for (let mask = 1; mask < 1 << layers.length; mask++) {
    const present = layers.filter((_, i) => mask & (1 << i));
    it(`layers ${present.join('+')}`, () => {
      const pick = (l: (typeof layers)[number]) => (present.includes(l) ? { p: conf(l), [`only_${l}`]: conf(l) } : undefined);
      const route = mergeRoutePlugins({ service: pick('service'), pluginConfig: pick('pluginConfig'), route: pick('route') });
      const merged = mergeConsumerPlugins(route, pick('group'), pick('consumer'));
      expect(merged.p).toEqual(conf(present[present.length - 1]));
      for (const l of present) expect(merged[`only_${l}`]).toEqual(conf(l));
    });
  }

  it('replaces the whole conf, never deep-merges, and leaves inputs untouched', () => {
    const service = { 'limit-count': { count: 1, time_window: 60, key: 'remote_addr' } };
    const route = { 'limit-count': { count: 5, time_window: 60 } };
    const merged = mergeRoutePlugins({ service, route });
    expect(merged['limit-count']).toBe(route['limit-count']);
    expect(service['limit-count'].key).toBe('remote_addr');
    expect(Object.keys(mergeRoutePlugins({}))).toEqual([]);
  });

  it('lists consumer-contributed plugin names', () => {
    expect([...consumerPluginNames({ a: {} }, { b: {}, a: {} })].sort()).toEqual(['a', 'b']);
    expect(consumerPluginNames().size).toBe(0);
  });
});
