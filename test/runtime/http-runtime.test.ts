// Incremental HTTP runtime builds: what is reused across snapshots, what is rebuilt, and which plugin
// chains are destroyed when a replaced runtime retires.
import { afterEach, describe, expect, it } from 'vitest';
import type { PluginChain } from '../../src/plugin/chain.ts';
import type { HttpRuntimeBuilder } from '../../src/runtime/http-runtime.ts';
import type { HttpRoute, HttpRuntime } from '../../src/runtime/types.ts';
import { Config, makeBuilder, makeRegistry, routeAt, upstream, type TrackerInstance } from './helpers.ts';

const builders: HttpRuntimeBuilder[] = [];

afterEach(async () => {
  for (const b of builders.splice(0)) await b.close();
});

function setup() {
  const { plugins, tracker } = makeRegistry();
  const builder = makeBuilder(plugins);
  builders.push(builder);
  const config = new Config(plugins);
  let current: HttpRuntime | null = null;
  const build = (): HttpRuntime => {
    current = builder.build(config.snapshot(), current);
    return current;
  };
  return { plugins, tracker, builder, config, build };
}

function trackerOf(chain: PluginChain | null | undefined): TrackerInstance | undefined {
  return chain?.step('tracker')?.instance as TrackerInstance | undefined;
}

function tracked(route: HttpRoute | null): TrackerInstance | undefined {
  return trackerOf(route?.chain);
}

function routeOf(rt: HttpRuntime, path: string): HttpRoute {
  const r = routeAt(rt, path);
  if (r === null) throw new Error(`no route at ${path}`);
  return r;
}

describe('incremental HTTP runtime', () => {
  it('keeps payloads, chains and upstreams of untouched routes; rebuilds the changed one', () => {
    const { config, build } = setup();
    config.put('routes', 'a', { uri: '/a', plugins: { tracker: { tag: 'a' } }, upstream: upstream(9001) });
    config.put('routes', 'b', { uri: '/b', plugins: { tracker: { tag: 'b' } }, upstream: upstream(9002) });
    const r1 = build();
    const a1 = routeOf(r1, '/a');
    const b1 = routeOf(r1, '/b');

    config.put('routes', 'b', { uri: '/b2', plugins: { tracker: { tag: 'b2' } }, upstream: upstream(9002) });
    config.put('routes', 'c', { uri: '/c', upstream: upstream(9003) });
    const r2 = build();
    expect(routeOf(r2, '/a')).toBe(a1);
    expect(routeAt(r2, '/b')).toBeNull();
    const b2 = routeOf(r2, '/b2');
    expect(b2).not.toBe(b1);
    expect(tracked(b2)?.tag).toBe('b2');
    // Same inline upstream conf: the runtime (balancer state, pools) is kept.
    expect(b2.upstream).toBe(b1.upstream);
    expect(routeOf(r2, '/c').upstream?.endpoints[0]?.port).toBe(9003);
    // The previous runtime still answers as before.
    expect(routeOf(r1, '/b')).toBe(b1);

    // Disabling and deleting routes (a routes-only change) drops them and their inline upstreams.
    config.put('routes', 'a', { uri: '/a', status: 0, plugins: { tracker: { tag: 'a' } }, upstream: upstream(9001) });
    config.delete('routes', 'c');
    const r3 = build();
    expect(routeAt(r3, '/a')).toBeNull();
    expect(routeAt(r3, '/c')).toBeNull();
    expect(routeOf(r3, '/b2')).toBe(b2);
    expect(r3.router.size).toBe(1);
    config.put('routes', 'a', { uri: '/a', plugins: { tracker: { tag: 'a' } }, upstream: upstream(9001) });
    const r4 = build();
    expect(routeOf(r4, '/a').upstream?.endpoints[0]?.port).toBe(9001);
  });

  it('a changed service updates its routes only', () => {
    const { config, build } = setup();
    config.put('services', 's', { plugins: { tracker: { tag: 's1' } }, upstream: upstream(9001) });
    config.put('routes', 'with', { uri: '/with', service_id: 's' });
    config.put('routes', 'without', { uri: '/without', plugins: { tracker: { tag: 'w' } }, upstream: upstream(9002) });
    const r1 = build();
    const without = routeOf(r1, '/without');
    expect(tracked(routeOf(r1, '/with'))?.tag).toBe('s1');

    config.put('services', 's', { plugins: { tracker: { tag: 's2' } }, upstream: upstream(9005), enable_websocket: true });
    const r2 = build();
    const w = routeOf(r2, '/with');
    expect(tracked(w)?.tag).toBe('s2');
    expect(w.enableWebsocket).toBe(true);
    expect(w.upstream?.endpoints[0]?.port).toBe(9005);
    expect(routeOf(r2, '/without')).toBe(without);

    config.delete('services', 's');
    const r3 = build();
    expect(routeOf(r3, '/with').broken?.code).toBe('SWY_ERR_SERVICE_NOT_FOUND');
  });

  it('a changed upstream updates the routes using upstream_id, keeping their chains', () => {
    const { config, build } = setup();
    config.put('upstreams', 'u', upstream(9001));
    config.put('services', 's', { upstream_id: 'u' });
    config.put('routes', 'direct', { uri: '/direct', upstream_id: 'u', plugins: { tracker: { tag: 'd' } } });
    config.put('routes', 'via-service', { uri: '/via', service_id: 's' });
    config.put('routes', 'other', { uri: '/other', upstream: upstream(9009) });
    const r1 = build();
    const direct1 = routeOf(r1, '/direct');
    const other1 = routeOf(r1, '/other');

    config.put('upstreams', 'u', upstream(9002));
    const r2 = build();
    const direct2 = routeOf(r2, '/direct');
    expect(direct2).not.toBe(direct1);
    expect(direct2.upstream?.endpoints[0]?.port).toBe(9002);
    expect(direct2.chain).toBe(direct1.chain);
    expect(routeOf(r2, '/via').upstream?.endpoints[0]?.port).toBe(9002);
    expect(routeOf(r2, '/other')).toBe(other1);
    // A routed request resolves upstream ids against the new runtime too.
    expect(r2.resolveUpstream('u')?.endpoints[0]?.port).toBe(9002);

    config.delete('upstreams', 'u');
    const r3 = build();
    expect(routeOf(r3, '/direct').broken).toEqual({ code: 'SWY_ERR_UPSTREAM_NOT_FOUND', detail: 'missing upstream u' });
  });

  it('a deleted plugin_config makes its routes answer 503; restoring it heals them', () => {
    const { config, build } = setup();
    config.put('plugin_configs', 'pc', { id: 'pc', plugins: { tracker: { tag: 'pc1' } } });
    config.put('routes', 'r', { uri: '/r', plugin_config_id: 'pc', upstream: upstream(9001) });
    config.put('routes', 'plain', { uri: '/plain', upstream: upstream(9001) });
    const r1 = build();
    expect(tracked(routeOf(r1, '/r'))?.tag).toBe('pc1');
    const plain = routeOf(r1, '/plain');

    config.delete('plugin_configs', 'pc');
    const r2 = build();
    expect(routeOf(r2, '/r').broken?.code).toBe('SWY_ERR_PLUGIN_CONFIG_NOT_FOUND');
    expect(routeOf(r2, '/plain')).toBe(plain);

    config.put('plugin_configs', 'pc', { id: 'pc', plugins: { tracker: { tag: 'pc2' } } });
    const r3 = build();
    const healed = routeOf(r3, '/r');
    expect(healed.broken).toBeNull();
    expect(tracked(healed)?.tag).toBe('pc2');
  });

  it('consumer changes update consumer chains and the directory seen by reused chains', () => {
    const { config, build } = setup();
    config.put('consumers', 'jack', { username: 'jack', plugins: { tracker: { tag: 'jack-1' } } });
    config.put('routes', 'r', { uri: '/r', plugins: { tracker: { tag: 'route' } }, upstream: upstream(9001) });
    const r1 = build();
    const route1 = routeOf(r1, '/r');
    const jack = { username: 'jack', plugins: {} };
    const c1 = r1.consumerChain(route1, jack);
    expect(trackerOf(c1)?.tag).toBe('jack-1');
    expect(r1.consumerChain(route1, jack)).toBe(c1);

    // An unrelated change keeps the consumer chain cached for the reused route.
    config.put('routes', 'other', { uri: '/other', upstream: upstream(9001) });
    const r2 = build();
    expect(routeOf(r2, '/r')).toBe(route1);
    expect(r2.consumerChain(route1, jack)).toBe(c1);

    config.put('consumers', 'jack', { username: 'jack', plugins: { tracker: { tag: 'jack-2' } } });
    config.put('consumers', 'jill', { username: 'jill', plugins: { tracker: { tag: 'jill' } } });
    const r3 = build();
    const route3 = routeOf(r3, '/r');
    expect(route3).toBe(route1);
    const c3 = r3.consumerChain(route3, jack);
    expect(c3).not.toBe(c1);
    expect(trackerOf(c3)?.tag).toBe('jack-2');
    // The route chain was reused; its plugins look consumers up in the current directory.
    expect(tracked(route3)?.consumers.find('tracker', 'tag', 'jill')?.consumer.username).toBe('jill');
  });

  it('plugin_metadata changes recompile only the chains using that plugin', () => {
    const { config, build } = setup();
    config.put('plugin_metadata', 'tracker', { level: 1 });
    config.put('routes', 't', { uri: '/t', plugins: { tracker: { tag: 't' } }, upstream: upstream(9001) });
    config.put('routes', 'n', { uri: '/n', plugins: { 'proxy-rewrite': { uri: '/x' } }, upstream: upstream(9001) });
    config.put('global_rules', 'g', { id: 'g', plugins: { tracker: { tag: 'g' } } });
    const r1 = build();
    const n1 = routeOf(r1, '/n');
    expect(tracked(routeOf(r1, '/t'))?.metadata).toEqual({ level: 1 });

    config.put('plugin_metadata', 'tracker', { level: 2 });
    const r2 = build();
    expect(tracked(routeOf(r2, '/t'))?.metadata).toEqual({ level: 2 });
    expect(trackerOf(r2.global)?.metadata).toEqual({ level: 2 });
    expect(r2.global).not.toBe(r1.global);
    expect(routeOf(r2, '/n')).toBe(n1);

    config.put('routes', 'x', { uri: '/x', upstream: upstream(9001) });
    const r3 = build();
    expect(r3.global).toBe(r2.global);
  });

  // detach(old, next)() is the deferred form of retire(old, next) the RuntimeManager uses: same outcome.
  it.each(['retire', 'detach'] as const)('%s destroys the chains of removed or replaced routes, never live ones', (mode) => {
    const { config, build, builder, tracker } = setup();
    const retire = (a: HttpRuntime, b: HttpRuntime): void => {
      if (mode === 'retire') builder.retire(a, b);
      else builder.detach(a, b)();
    };
    config.put('routes', 'keep', { uri: '/keep', plugins: { tracker: { tag: 'keep' } }, upstream: upstream(9001) });
    config.put('routes', 'gone', { uri: '/gone', plugins: { tracker: { tag: 'gone' } }, upstream: upstream(9001) });
    config.put('routes', 'changed', { uri: '/changed', plugins: { tracker: { tag: 'v1' } }, upstream: upstream(9001) });
    config.put('consumers', 'jack', { username: 'jack', plugins: { tracker: { tag: 'jack' } } });
    const r1 = build();
    const consumerChain = r1.consumerChain(routeOf(r1, '/keep'), { username: 'jack', plugins: {} });
    config.delete('routes', 'gone');
    config.put('routes', 'changed', { uri: '/changed', plugins: { tracker: { tag: 'v2' } }, upstream: upstream(9001) });
    const r2 = build();
    const byTag = (tag: string): TrackerInstance[] => tracker.created.filter((t) => t.tag === tag);

    retire(r1, r2);
    expect(byTag('gone').map((t) => t.destroyed)).toEqual([1]);
    expect(byTag('v1').map((t) => t.destroyed)).toEqual([1]);
    expect(byTag('keep').map((t) => t.destroyed)).toEqual([0]);
    expect(byTag('v2').map((t) => t.destroyed)).toEqual([0]);
    // The consumer chain was carried over with its route: still live.
    expect(byTag('jack').map((t) => t.destroyed)).toEqual([0]);
    expect(r2.consumerChain(routeOf(r2, '/keep'), { username: 'jack', plugins: {} })).toBe(consumerChain);

    // The next change drops the consumer chain (consumers changed) and the route 'keep'.
    config.put('consumers', 'jack', { username: 'jack', plugins: { tracker: { tag: 'jack2' } } });
    config.delete('routes', 'keep');
    const r3 = build();
    retire(r2, r3);
    expect(byTag('keep').map((t) => t.destroyed)).toEqual([1]);
    expect(byTag('jack').map((t) => t.destroyed)).toEqual([1]);
    expect(byTag('v2').map((t) => t.destroyed)).toEqual([0]);
    // Every instance was destroyed at most once.
    expect(tracker.created.every((t) => t.destroyed <= 1)).toBe(true);
  });

  it('discard destroys only what an unpublished build created', () => {
    const { config, builder, tracker } = setup();
    config.put('routes', 'a', { uri: '/a', plugins: { tracker: { tag: 'a' } }, upstream: upstream(9001) });
    const r1 = builder.build(config.snapshot(), null);
    config.put('routes', 'b', { uri: '/b', plugins: { tracker: { tag: 'b' } }, upstream: upstream(9001) });
    const unpublished = builder.build(config.snapshot(), r1);
    builder.discard(unpublished, r1);
    expect(tracker.created.map((t) => [t.tag, t.destroyed])).toEqual([
      ['a', 0],
      ['b', 1],
    ]);
    expect(tracked(routeOf(r1, '/a'))?.destroyed).toBe(0);
  });
});
