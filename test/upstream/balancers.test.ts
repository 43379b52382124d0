import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/config/resources.ts';
import { ALL_HEALTHY, BalancerRegistry, type Balancer, type Endpoint, type HealthView, type PickContext } from '../../src/upstream/balancer.ts';
import { createBalancer, setupBalancers } from '../../src/upstream/balancers.ts';
import { ChashKey, parseTemplate } from '../../src/upstream/chash-key.ts';
import { MapVars } from '../../src/router/vars.ts';

function registry(): BalancerRegistry {
  const r = new BalancerRegistry();
  setupBalancers(r);
  return r;
}

function ep(n: number, weight = 1, priority = 0): Endpoint {
  return { key: `10.0.0.${n}:80`, host: `10.0.0.${n}`, port: 80, weight, priority, domain: `10.0.0.${n}` };
}

function unhealthy(...keys: string[]): HealthView {
  const bad = new Set(keys);
  return { isHealthy: (k) => !bad.has(k) };
}

const noVars = new MapVars();
const ctx: PickContext = { vars: noVars, tried: null };

function pickKey(b: Balancer, c: PickContext = ctx): string {
  const r = b.pick(c);
  if (!r.ok) throw new Error(`pick failed: ${r.reason}`);
  return r.endpoint.key;
}

function counts(b: Balancer, n: number, c: PickContext = ctx): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const k = pickKey(b, c);
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

describe('registry', () => {
  it('registers the four APISIX types once', () => {
    const r = registry();
    expect(r.types().sort()).toEqual(['chash', 'ewma', 'least_conn', 'roundrobin']);
    expect(() => setupBalancers(r)).toThrow(/registered twice/);
    expect(() => createBalancer(r, 'nope', [ep(1)], {}, ALL_HEALTHY)).toThrow(/unknown balancer type/);
  });

  it.each(['roundrobin', 'chash', 'least_conn', 'ewma'])('%s: no endpoints -> no_nodes, all tried -> exhausted', (type) => {
    const r = registry();
    const conf: JsonObject = { type, key: 'remote_addr' };
    expect(createBalancer(r, type, [], conf, ALL_HEALTHY).pick(ctx)).toEqual({ ok: false, reason: 'no_nodes' });
    expect(createBalancer(r, type, [ep(1, 0)], conf, ALL_HEALTHY).pick(ctx)).toEqual({ ok: false, reason: 'no_nodes' });
    const b = createBalancer(r, type, [ep(1), ep(2)], conf, ALL_HEALTHY);
    const tried = new Set([ep(1).key, ep(2).key]);
    expect(b.pick({ vars: noVars, tried })).toEqual({ ok: false, reason: 'exhausted' });
  });

  it.each(['roundrobin', 'chash', 'least_conn', 'ewma'])('%s: retries never repeat a tried node', (type) => {
    const b = createBalancer(registry(), type, [ep(1), ep(2), ep(3)], { key: 'remote_addr' }, ALL_HEALTHY);
    const vars = new MapVars({ remote_addr: '192.0.2.7' });
    const tried = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const k = pickKey(b, { vars, tried });
      expect(tried.has(k)).toBe(false);
      tried.add(k);
    }
    expect(b.pick({ vars, tried }).ok).toBe(false);
  });

  it.each(['roundrobin', 'chash', 'least_conn', 'ewma'])('%s: skips unhealthy nodes, uses all when all are unhealthy', (type) => {
    const r = registry();
    const eps = [ep(1), ep(2), ep(3)];
    const some = createBalancer(r, type, eps, { key: 'remote_addr' }, unhealthy(ep(2).key));
    for (let i = 0; i < 50; i++) {
      const vars = new MapVars({ remote_addr: `192.0.2.${i}` });
      expect(pickKey(some, { vars, tried: null })).not.toBe(ep(2).key);
    }
    const all = createBalancer(r, type, eps, { key: 'remote_addr' }, unhealthy(...eps.map((e) => e.key)));
    const seen = new Set<string>();
    for (let i = 0; i < 60; i++) seen.add(pickKey(all, { vars: new MapVars({ remote_addr: `192.0.2.${i}` }), tried: null }));
    expect(seen.size).toBe(3);
    // healthy ones all tried: no fallback to the unhealthy node
    const tried = new Set([ep(1).key, ep(3).key]);
    expect(some.pick({ vars: noVars, tried })).toEqual({ ok: false, reason: 'exhausted' });
  });
});

describe('roundrobin', () => {
  it('picks each node exactly weight times per cycle, interleaved', () => {
    const b = createBalancer(registry(), 'roundrobin', [ep(1, 1), ep(2, 2), ep(3, 5)], {}, ALL_HEALTHY);
    for (let cycle = 0; cycle < 3; cycle++) {
      const seq: string[] = [];
      for (let i = 0; i < 8; i++) seq.push(pickKey(b));
      const c = new Map<string, number>();
      for (const k of seq) c.set(k, (c.get(k) ?? 0) + 1);
      expect(c.get(ep(1).key)).toBe(1);
      expect(c.get(ep(2).key)).toBe(2);
      expect(c.get(ep(3).key)).toBe(5);
      // smooth: the weight-5 node never runs more than 2 in a row
      let run = 0;
      let maxRun = 0;
      for (const k of seq) {
        run = k === ep(3).key ? run + 1 : 0;
        maxRun = Math.max(maxRun, run);
      }
      expect(maxRun).toBeLessThanOrEqual(2);
    }
  });

  it('never picks weight-0 nodes', () => {
    const b = createBalancer(registry(), 'roundrobin', [ep(1, 0), ep(2, 1)], {}, ALL_HEALTHY);
    expect(counts(b, 20).get(ep(1).key)).toBeUndefined();
  });
});

describe('chash', () => {
  const eps = [ep(1), ep(2), ep(3), ep(4)];

  it('is sticky per key and spreads keys', () => {
    const b = createBalancer(registry(), 'chash', eps, { hash_on: 'vars', key: 'arg_user' }, ALL_HEALTHY);
    const owner = new Map<string, string>();
    const perNode = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      const vars = new MapVars({ arg_user: `user-${i}` });
      const k = pickKey(b, { vars, tried: null });
      owner.set(`user-${i}`, k);
      perNode.set(k, (perNode.get(k) ?? 0) + 1);
    }
    for (let i = 0; i < 2000; i += 7) {
      expect(pickKey(b, { vars: new MapVars({ arg_user: `user-${i}` }), tried: null })).toBe(owner.get(`user-${i}`));
    }
    expect(perNode.size).toBe(4);
    for (const n of perNode.values()) expect(n).toBeGreaterThan(300);
  });

  it('moves only the keys of a node that becomes unhealthy', () => {
    const r = registry();
    const conf = { hash_on: 'header', key: 'X-User' };
    const healthy = createBalancer(r, 'chash', eps, conf, ALL_HEALTHY);
    const degraded = createBalancer(r, 'chash', eps, conf, unhealthy(ep(2).key));
    let moved = 0;
    for (let i = 0; i < 1000; i++) {
      const c = { vars: new MapVars({ http_x_user: `u${i}` }), tried: null };
      const before = pickKey(healthy, c);
      const after = pickKey(degraded, c);
      if (before !== ep(2).key) expect(after).toBe(before);
      else {
        expect(after).not.toBe(ep(2).key);
        moved++;
      }
    }
    expect(moved).toBeGreaterThan(100);
  });

  it('a retry walks to the next node on the ring', () => {
    const b = createBalancer(registry(), 'chash', eps, { hash_on: 'cookie', key: 'sid' }, ALL_HEALTHY);
    const vars = new MapVars({ cookie_sid: 'abc' });
    const first = pickKey(b, { vars, tried: null });
    const second = pickKey(b, { vars, tried: new Set([first]) });
    expect(second).not.toBe(first);
    expect(pickKey(b, { vars, tried: new Set([first]) })).toBe(second);
  });

  it('weights scale the share of keys', () => {
    const b = createBalancer(registry(), 'chash', [ep(1, 1), ep(2, 3)], { key: 'uri' }, ALL_HEALTHY);
    const c = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const k = pickKey(b, { vars: new MapVars({ uri: `/p/${i}` }), tried: null });
      c.set(k, (c.get(k) ?? 0) + 1);
    }
    const heavy = c.get(ep(2).key)! / 4000;
    expect(heavy).toBeGreaterThan(0.6);
    expect(heavy).toBeLessThan(0.9);
  });

  it('key sources: consumer, vars_combinations, remote_addr fallback', () => {
    expect(new ChashKey({ hash_on: 'consumer' }).get(new MapVars({ consumer_name: 'jack' }))).toBe('jack');
    expect(new ChashKey({ hash_on: 'consumer' }).get(new MapVars({ remote_addr: '1.2.3.4' }))).toBe('1.2.3.4');
    const combo = new ChashKey({ hash_on: 'vars_combinations', key: '$request_uri-${arg_a}x$remote_addr' });
    expect(combo.get(new MapVars({ request_uri: '/a?b', arg_a: '1', remote_addr: '9.9.9.9' }))).toBe('/a?b-1x9.9.9.9');
    expect(new ChashKey({ hash_on: 'vars_combinations', key: '$arg_none$http_none' }).get(new MapVars({ remote_addr: '5.5.5.5' }))).toBe(
      '5.5.5.5',
    );
    expect(new ChashKey({ hash_on: 'header', key: 'X-Api-Key' }).get(new MapVars({ http_x_api_key: 'k' }))).toBe('k');
    expect(new ChashKey({ hash_on: 'vars', key: 'mqtt_client_id' }).get(new MapVars({ mqtt_client_id: 'c1' }))).toBe('c1');
    expect(new ChashKey({ hash_on: 'vars', key: 'arg_x' }).get(new MapVars({ arg_x: '', remote_addr: 'ra' }))).toBe('ra');
    expect(parseTemplate('a$b$')).toEqual([
      { name: null, literal: 'a' },
      { name: 'b', literal: '' },
      { name: null, literal: '$' },
    ]);
    expect(() => new ChashKey({ hash_on: 'bogus' })).toThrow(/hash_on/);
  });
});

describe('least_conn', () => {
  it('prefers the node with the fewest in-flight requests, weighted', () => {
    const b = createBalancer(registry(), 'least_conn', [ep(1), ep(2), ep(3)], {}, ALL_HEALTHY);
    const held: Endpoint[] = [];
    for (let i = 0; i < 9; i++) {
      const r = b.pick(ctx);
      if (!r.ok) throw new Error('pick');
      b.begin!(r.endpoint);
      held.push(r.endpoint);
    }
    const c = new Map<string, number>();
    for (const e of held) c.set(e.key, (c.get(e.key) ?? 0) + 1);
    expect([...c.values()]).toEqual([3, 3, 3]);
    // release two on node 2: it is now the least loaded
    const two = held.filter((e) => e.key === ep(2).key);
    b.end!(two[0]!, { latencyMs: 1, failed: false });
    b.end!(two[1]!, { latencyMs: 1, failed: false });
    expect(pickKey(b)).toBe(ep(2).key);
  });

  it('idle ties alternate; (in-flight + 1) / weight favours heavier nodes', () => {
    const r = registry();
    const even = counts(createBalancer(r, 'least_conn', [ep(1), ep(2)], {}, ALL_HEALTHY), 400);
    expect(even.get(ep(1).key)).toBe(200);
    const b = createBalancer(r, 'least_conn', [ep(1, 1), ep(2, 3)], {}, ALL_HEALTHY);
    const held: Endpoint[] = [];
    for (let i = 0; i < 8; i++) {
      const p = b.pick(ctx);
      if (!p.ok) throw new Error('pick');
      b.begin!(p.endpoint);
      held.push(p.endpoint);
    }
    expect(held.filter((e) => e.key === ep(2).key).length).toBe(6);
  });
});

describe('ewma', () => {
  it('sends most traffic to the fast node', () => {
    const b = createBalancer(registry(), 'ewma', [ep(1), ep(2)], {}, ALL_HEALTHY);
    const latency: Record<string, number> = { [ep(1).key]: 2, [ep(2).key]: 200 };
    const c = new Map<string, number>();
    for (let i = 0; i < 500; i++) {
      const r = b.pick(ctx);
      if (!r.ok) throw new Error('pick');
      b.begin!(r.endpoint);
      b.end!(r.endpoint, { latencyMs: latency[r.endpoint.key]!, failed: false });
      c.set(r.endpoint.key, (c.get(r.endpoint.key) ?? 0) + 1);
    }
    expect(c.get(ep(1).key)!).toBeGreaterThan(450);
  });

  it('penalises failures', () => {
    const b = createBalancer(registry(), 'ewma', [ep(1), ep(2)], {}, ALL_HEALTHY);
    b.end!(ep(1), { latencyMs: 50, failed: false });
    b.end!(ep(2), { latencyMs: 1, failed: true });
    expect(counts(b, 20).get(ep(1).key)).toBe(20);
  });
});

describe('priority', () => {
  const eps = [ep(1, 1, 10), ep(2, 1, 10), ep(3, 1, 0), ep(4, 1, -5)];

  it('uses the highest priority group while it has usable nodes', () => {
    const b = createBalancer(registry(), 'roundrobin', eps, {}, ALL_HEALTHY);
    expect([...counts(b, 20).keys()].sort()).toEqual([ep(1).key, ep(2).key]);
  });

  it('falls to the next group only when the group is all tried or unhealthy', () => {
    const r = registry();
    const b = createBalancer(r, 'roundrobin', eps, {}, unhealthy(ep(1).key));
    expect(counts(b, 10).get(ep(2).key)).toBe(10);
    expect(pickKey(b, { vars: noVars, tried: new Set([ep(2).key]) })).toBe(ep(3).key);
    expect(pickKey(b, { vars: noVars, tried: new Set([ep(2).key, ep(3).key]) })).toBe(ep(4).key);
    expect(b.pick({ vars: noVars, tried: new Set([ep(2).key, ep(3).key, ep(4).key]) }).ok).toBe(false);
    const all = createBalancer(r, 'chash', eps, { key: 'remote_addr' }, unhealthy(...eps.map((e) => e.key)));
    const k = pickKey(all, { vars: new MapVars({ remote_addr: '1.1.1.1' }), tried: null });
    expect([ep(1).key, ep(2).key]).toContain(k);
  });

  it('routes begin/end to the owning group', () => {
    const b = createBalancer(registry(), 'least_conn', [ep(1, 1, 1), ep(2, 1, 1), ep(3, 1, 0)], {}, ALL_HEALTHY);
    b.begin!(ep(1));
    expect(pickKey(b)).toBe(ep(2).key);
    b.end!(ep(1), { latencyMs: 1, failed: false });
  });
});
