// HealthManager with real backends killed and restarted: eager checkers, http/tcp/udp probes, passive-only
// ejection and cool-down, teardown with the config, and how balancers use the views.
import { afterEach, describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/config/resources.ts';
import { UpstreamRuntime } from '../../src/upstream/upstream.ts';
import { waitFor } from '../helpers/proc.ts';
import { httpBackend, item, tcpBackend, testManager, udpBackend, type Backend, type TestManager } from './helpers.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function track<T extends Backend>(b: T): T {
  cleanups.push(() => b.stop());
  return b;
}

function managed(opts?: Parameters<typeof testManager>[0]): TestManager {
  const t = testManager(opts);
  cleanups.push(() => t.manager.close());
  return t;
}

const fastActive = (extra: JsonObject = {}): JsonObject => ({
  type: 'http',
  http_path: '/health',
  timeout: 1,
  healthy: { interval: 1, successes: 1 },
  unhealthy: { interval: 1, http_failures: 1, tcp_failures: 1, timeouts: 1 },
  ...extra,
});

function statusOf(t: TestManager, key: string, port: number): string | undefined {
  return t.manager.get(key)?.nodes.find((n) => n.port === port)?.status;
}

describe('active checks', () => {
  it('starts with the config, ejects a killed node and brings it back after restart', async () => {
    const a = track(await httpBackend('a'));
    const b = track(await httpBackend('b'));
    const t = managed();
    const changes: [string, boolean][] = [];
    t.manager.on('change', (_k: string, ep: string, healthy: boolean) => changes.push([ep, healthy]));
    const conf = { nodes: { [`127.0.0.1:${a.port}`]: 1, [`127.0.0.1:${b.port}`]: 1 }, checks: { active: fastActive() } };
    t.sync([item('upstreams', '1', conf)]);
    const view = t.manager.view('upstreams/1', conf);
    // Eager: probes reach both nodes without any request through the upstream.
    await waitFor(() => a.probes > 0 && b.probes > 0, 5000, 20);
    expect(t.manager.list().map((c) => c.name)).toEqual(['/apisix/upstreams/1']);

    await b.stop();
    // interval (1 s) x tcp_failures (1) + probe timeout, with slack for a loaded machine.
    await waitFor(() => !view.isHealthy(`127.0.0.1:${b.port}`), 6000, 20);
    expect(view.isHealthy(`127.0.0.1:${a.port}`)).toBe(true);
    expect(statusOf(t, 'upstreams/1', b.port)).toBe('unhealthy');
    expect(changes).toContainEqual([`127.0.0.1:${b.port}`, false]);

    await b.start();
    await waitFor(() => view.isHealthy(`127.0.0.1:${b.port}`), 6000, 20);
    expect(changes.at(-1)).toEqual([`127.0.0.1:${b.port}`, true]);
  });

  it('counts http statuses: unhealthy statuses fail, others are ignored', async () => {
    const a = track(await httpBackend('a', { probeStatus: 500 }));
    const t = managed();
    const conf = { nodes: { [`127.0.0.1:${a.port}`]: 1 }, checks: { active: fastActive({ unhealthy: { interval: 1, http_failures: 2 } }) } };
    t.sync([item('upstreams', 'h', conf)]);
    const view = t.manager.view('upstreams/h', conf);
    await waitFor(() => statusOf(t, 'upstreams/h', a.port) === 'mostly_healthy', 5000, 10);
    await waitFor(() => !view.isHealthy(`127.0.0.1:${a.port}`), 6000, 20);
    const c = t.manager.get('upstreams/h')!.nodes[0]!;
    expect(c.counter).toEqual({ success: 0, http_failure: 0, tcp_failure: 0, timeout_failure: 0 });
    a.probeStatus = 200;
    await waitFor(() => view.isHealthy(`127.0.0.1:${a.port}`), 6000, 20);
  });

  it('sends http_path, host and req_headers', async () => {
    let seen: { url?: string; host?: string; x?: string } = {};
    const http = await import('node:http');
    const srv = http.createServer((req, res) => {
      seen = { url: req.url, host: req.headers.host, x: req.headers['x-probe'] as string };
      res.end();
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
    const port = (srv.address() as { port: number }).port;
    const t = managed();
    const conf = {
      nodes: { [`127.0.0.1:${port}`]: 1 },
      checks: { active: fastActive({ http_path: '/ready?x=1', host: 'svc.test', req_headers: ['X-Probe: yes'] }) },
    };
    t.sync([item('upstreams', 'p', conf)]);
    await waitFor(() => seen.url !== undefined, 5000, 10);
    expect(seen).toEqual({ url: '/ready?x=1', host: 'svc.test', x: 'yes' });
  });

  it('tcp checks a stream upstream', async () => {
    const a = track(await tcpBackend('a'));
    const t = managed();
    const conf = {
      scheme: 'tcp',
      nodes: { [`127.0.0.1:${a.port}`]: 1 },
      checks: { active: { type: 'tcp', timeout: 1, healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, tcp_failures: 1 } } },
    };
    t.sync([item('stream_routes', 's1', { server_port: 9100, upstream: conf })]);
    const view = t.manager.view('stream_routes/s1', conf);
    await waitFor(() => a.hits > 0, 5000, 20);
    await a.stop();
    await waitFor(() => !view.isHealthy(`127.0.0.1:${a.port}`), 6000, 20);
    expect(t.manager.get('stream_routes/s1')?.type).toBe('tcp');
    await a.start();
    await waitFor(() => view.isHealthy(`127.0.0.1:${a.port}`), 6000, 20);
  });

  it('udp probes send a payload and expect a reply', async () => {
    const u = track(await udpBackend('u'));
    const t = managed();
    const conf = {
      scheme: 'udp',
      nodes: { [`127.0.0.1:${u.port}`]: 1 },
      checks: {
        active: {
          type: 'udp',
          timeout: 0.5,
          udp_payload: Buffer.from('ping').toString('hex'),
          udp_expect: Buffer.from('pong').toString('hex'),
          healthy: { interval: 1, successes: 1 },
          unhealthy: { interval: 1, timeouts: 1, tcp_failures: 1 },
        },
      },
    };
    t.sync([item('upstreams', 'u', conf)]);
    const view = t.manager.view('upstreams/u', conf);
    await waitFor(() => u.probes > 0, 5000, 20);
    expect(view.isHealthy(`127.0.0.1:${u.port}`)).toBe(true);
    await u.stop();
    await waitFor(() => !view.isHealthy(`127.0.0.1:${u.port}`), 6000, 20);
    await u.start();
    await waitFor(() => view.isHealthy(`127.0.0.1:${u.port}`), 6000, 20);
  });
});

describe('passive checks', () => {
  const passiveOnly = (nodes: JsonObject): JsonObject => ({
    nodes,
    checks: { passive: { unhealthy: { http_statuses: [500, 503], http_failures: 2, tcp_failures: 1, timeouts: 1 } } },
  });

  it('passive-only ejects after consecutive failures and restores after the cool-down', async () => {
    const t = managed({ passiveCooldownMs: 300 });
    const conf = passiveOnly({ '127.0.0.1:1001': 1, '127.0.0.1:1002': 1 });
    t.sync([item('upstreams', 'p', conf)]);
    const view = t.manager.view('upstreams/p', conf);
    const ep = '127.0.0.1:1001';
    t.manager.reportStatus('upstreams/p', ep, 500);
    t.manager.reportStatus('upstreams/p', ep, 200); // a success breaks the streak
    t.manager.reportStatus('upstreams/p', ep, 500);
    expect(view.isHealthy(ep)).toBe(true);
    t.manager.reportStatus('upstreams/p', ep, 503);
    expect(view.isHealthy(ep)).toBe(false);
    await waitFor(() => view.isHealthy(ep), 5000, 10);
    // Failed attempts without a status: connect/reset count as tcp failures, timeouts as timeouts.
    t.manager.report('upstreams/p', ep, { kind: 'timeout' });
    expect(view.isHealthy(ep)).toBe(false);
    await waitFor(() => view.isHealthy(ep), 5000, 10);
    t.manager.reportFailure('upstreams/p', ep, 'connect');
    expect(view.isHealthy(ep)).toBe(false);
  });

  it('with an active block, passive failures demote and only probes recover', async () => {
    const a = track(await httpBackend('a'));
    const t = managed({ passiveCooldownMs: 50 });
    const conf = {
      nodes: { [`127.0.0.1:${a.port}`]: 1 },
      checks: { active: fastActive({ healthy: { interval: 1, successes: 3 } }), passive: { unhealthy: { http_statuses: [500], http_failures: 1 } } },
    };
    t.sync([item('upstreams', 'ap', conf)]);
    const view = t.manager.view('upstreams/ap', conf);
    const ep = `127.0.0.1:${a.port}`;
    t.manager.reportStatus('upstreams/ap', ep, 500);
    expect(view.isHealthy(ep)).toBe(false);
    const before = a.probes;
    await waitFor(() => view.isHealthy(ep), 8000, 20);
    expect(a.probes - before).toBeGreaterThanOrEqual(3);
  });
});

describe('lifecycle and balancers', () => {
  it('tears checkers down with the config and resets state when checks change', async () => {
    const t = managed();
    const drops: string[] = [];
    t.manager.on('drop', (k: string) => drops.push(k));
    const passive = { passive: { unhealthy: { http_statuses: [500], http_failures: 1 } } };
    const conf = { nodes: { '127.0.0.1:1001': 1, '127.0.0.1:1002': 1 }, checks: passive };
    t.sync([item('upstreams', '1', conf), item('routes', 'r', { uri: '/x', upstream: conf })]);
    expect(t.manager.list().map((c) => c.name).sort()).toEqual(['/apisix/routes/r', '/apisix/upstreams/1']);
    const view = t.manager.view('upstreams/1', conf);
    t.manager.reportStatus('upstreams/1', '127.0.0.1:1001', 500);
    expect(view.isHealthy('127.0.0.1:1001')).toBe(false);

    // A node added, checks unchanged: state kept.
    const grown = { ...conf, nodes: { ...conf.nodes, '127.0.0.1:1003': 1 } };
    t.sync([item('upstreams', '1', grown)]);
    expect(drops).toEqual(['routes/r']);
    expect(view.isHealthy('127.0.0.1:1001')).toBe(false);
    expect(t.manager.get('upstreams/1')?.nodes).toHaveLength(3);

    // Checks changed: a fresh checker, every node healthy.
    const changed = { ...grown, checks: { passive: { unhealthy: { http_statuses: [502], http_failures: 1 } } } };
    t.sync([item('upstreams', '1', changed)]);
    expect(view.isHealthy('127.0.0.1:1001')).toBe(true);

    t.sync([]);
    expect(t.manager.list()).toEqual([]);
    expect(drops).toContain('upstreams/1');
  });

  it('balancers skip unhealthy nodes, use all when all are unhealthy, chash keeps its ring', () => {
    const t = managed();
    const nodes = { '127.0.0.1:1001': 1, '127.0.0.1:1002': 1, '127.0.0.1:1003': 1 };
    const checks = { passive: { unhealthy: { http_statuses: [500], http_failures: 1 } } };
    const rr = { nodes, checks };
    const ch = { nodes, checks, type: 'chash', hash_on: 'vars', key: 'arg_k' };
    t.sync([item('upstreams', 'rr', rr), item('upstreams', 'ch', ch)]);
    const up = (key: string, conf: JsonObject) =>
      new UpstreamRuntime({ key, conf, registry: t.balancers, health: t.manager.view(key, conf) });
    const rrUp = up('upstreams/rr', rr);
    const pick = (u: UpstreamRuntime, k = '') => {
      const r = u.pick({ vars: { get: (n: string) => (n === 'arg_k' ? k : undefined) } as never, tried: null });
      return r.ok ? r.endpoint.key : r.reason;
    };
    t.manager.reportStatus('upstreams/rr', '127.0.0.1:1001', 500);
    const picks = new Set(Array.from({ length: 12 }, () => pick(rrUp)));
    expect([...picks].sort()).toEqual(['127.0.0.1:1002', '127.0.0.1:1003']);
    t.manager.reportStatus('upstreams/rr', '127.0.0.1:1002', 500);
    t.manager.reportStatus('upstreams/rr', '127.0.0.1:1003', 500);
    const all = new Set(Array.from({ length: 12 }, () => pick(rrUp)));
    expect(all.size).toBe(3);

    const chUp = up('upstreams/ch', ch as JsonObject);
    const keys = Array.from({ length: 60 }, (_, i) => `user-${i}`);
    const before = new Map(keys.map((k) => [k, pick(chUp, k)]));
    t.manager.reportStatus('upstreams/ch', '127.0.0.1:1002', 500);
    for (const k of keys) {
      const was = before.get(k)!;
      const now = pick(chUp, k);
      if (was === '127.0.0.1:1002') expect(now).not.toBe('127.0.0.1:1002');
      else expect(now).toBe(was);
    }
  });
});
