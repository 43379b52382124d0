import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BalancerRegistry } from '../../src/upstream/balancer.ts';
import { setupBalancers } from '../../src/upstream/balancers.ts';
import { DnsCache } from '../../src/upstream/dns.ts';
import { Pools } from '../../src/upstream/pools.ts';
import { UpstreamCache, UpstreamRuntime } from '../../src/upstream/upstream.ts';
import { MapVars } from '../../src/router/vars.ts';
import { freeTcpUdpPort } from '../helpers/ports.ts';
import { startPeer, tempDir, waitFor, type Peer } from '../helpers/proc.ts';

const registry = new BalancerRegistry();
setupBalancers(registry);
const ctx = { vars: new MapVars(), tried: null };

describe('UpstreamRuntime', () => {
  it('applies APISIX defaults', () => {
    const u = new UpstreamRuntime({ key: '1', conf: { nodes: { '127.0.0.1:1980': 1, '127.0.0.1:1981': 1 } }, registry });
    expect(u.type).toBe('roundrobin');
    expect(u.scheme).toBe('http');
    expect(u.retries).toBe(1);
    expect(u.retryTimeoutMs).toBe(0);
    expect(u.timeout).toEqual({ connect: 60, send: 60, read: 60 });
    expect(u.keepalivePool).toEqual({ size: 320, idleTimeout: 60, requests: 1000 });
    expect(u.passHost).toBe('pass');
    expect(u.tls.verify).toBe(false);
    expect(u.http2).toBe(false);
    expect(u.isGrpc).toBe(false);
    expect(u.defaultPort).toBe(80);
    expect(u.pick(ctx).ok).toBe(true);
    expect(() => u.pool(u.endpoints[0]!)).toThrow(/no connection pools/);
  });

  it('reads settings and computes the Host header per pass_host', () => {
    const u = new UpstreamRuntime({
      key: 'r/1',
      registry,
      conf: {
        type: 'chash', hash_on: 'vars', key: 'remote_addr', scheme: 'https', retries: 0, retry_timeout: 2.5,
        timeout: { connect: 1, send: 2, read: 3 }, pass_host: 'node', http2: true,
        keepalive_pool: { size: 4, idle_timeout: 5, requests: 6 }, tls: { verify: true },
        nodes: [{ host: '127.0.0.1', port: 443, weight: 1 }, { host: '::1', port: 8443, weight: 1 }],
      },
    });
    expect(u.retries).toBe(0);
    expect(u.retryTimeoutMs).toBe(2500);
    expect(u.retryTimeout).toBe(2.5);
    expect(u.defaultPort).toBe(443);
    expect(u.connectTimeoutMs).toBe(1000);
    expect(u.http2).toBe(true);
    const [a, b] = u.endpoints;
    expect(u.hostHeader(a!, 'client.test')).toBe('127.0.0.1');
    expect(u.hostHeader(b!, 'client.test')).toBe('[::1]:8443');
    const pass = new UpstreamRuntime({ key: 'x', registry, conf: { nodes: { '127.0.0.1:80': 1 } } });
    expect(pass.hostHeader(pass.endpoints[0]!, 'client.test')).toBe('client.test');
    const rw = new UpstreamRuntime({ key: 'y', registry, conf: { pass_host: 'rewrite', upstream_host: 'up.test', nodes: { '127.0.0.1:80': 1 } } });
    expect(rw.hostHeader(rw.endpoints[0]!, 'client.test')).toBe('up.test');
    expect(new UpstreamRuntime({ key: 'g', registry, conf: { scheme: 'grpc', nodes: {} } }).http2).toBe(true);
  });

  it('rejects invalid confs', () => {
    expect(() => new UpstreamRuntime({ key: 'a', registry, conf: { type: 'magic', nodes: {} } })).toThrow(/unknown balancer/);
    expect(() => new UpstreamRuntime({ key: 'a', registry, conf: { pass_host: 'rewrite', nodes: {} } })).toThrow(/upstream_host/);
    expect(() => new UpstreamRuntime({ key: 'a', registry, conf: { tls: { client_cert_id: 'c1' }, nodes: {} } })).toThrow(/client_cert_id/);
  });

  it('empty nodes give no_nodes', () => {
    const u = new UpstreamRuntime({ key: 'e', registry, conf: { nodes: {} } });
    expect(u.pick(ctx)).toEqual({ ok: false, reason: 'no_nodes' });
    expect(u.retries).toBe(0);
  });

  it('resolves localhost from the hosts file before serving', async () => {
    const dns = new DnsCache({ servers: ['127.0.0.1:9'], timeoutMs: 200, tries: 1 });
    try {
      const u = new UpstreamRuntime({ key: 'l', registry, dns, conf: { pass_host: 'node', nodes: { 'localhost:1980': 1, '127.0.0.9:1980': 1 } } });
      await u.ready();
      const local = u.endpoints.find((e) => e.domain === 'localhost');
      expect(local).toMatchObject({ key: '127.0.0.1:1980', host: '127.0.0.1', domain: 'localhost' });
      expect(u.hostHeader(local!, 'c')).toBe('localhost:1980');
      expect(u.retries).toBe(1);
      u.close();
    } finally {
      dns.close();
    }
  });
});

describe('DNS via dnsmasq', () => {
  let peer: Peer;
  let port: number;
  let tmp: { dir: string; cleanup(): Promise<void> };
  let hostsPath: string;

  beforeAll(async () => {
    tmp = await tempDir('swy-dns-');
    hostsPath = path.join(tmp.dir, 'hosts');
    await writeFile(hostsPath, '127.0.0.2 svc.test\n127.0.0.3 svc.test\n');
    port = await freeTcpUdpPort();
    peer = startPeer('dnsmasq', [
      '--no-daemon', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts',
      `--addn-hosts=${hostsPath}`, '--local-ttl=1', '--user=root', '--pid-file=',
    ]);
    await waitFor(() => peer.output().includes('read '), 10_000);
  });

  afterAll(async () => {
    await peer?.stop();
    await tmp?.cleanup();
  });

  it('resolves with TTL, refreshes in the background and rebuilds the balancer on change', async () => {
    const dns = new DnsCache({ servers: [`127.0.0.1:${port}`], hostsFile: null, minTtl: 1, timeoutMs: 1000 });
    const cache = await UpstreamCache.build(null, [['u1', { nodes: { 'svc.test:8080': 1, '127.0.0.1:8081': 1 } }]], { registry, dns });
    try {
      const u = cache.get('u1')!;
      expect(u.endpoints.map((e) => e.key).sort()).toEqual(['127.0.0.1:8081', '127.0.0.2:8080', '127.0.0.3:8080']);
      expect(u.endpoints.filter((e) => e.domain === 'svc.test').length).toBe(2);
      const before = u.balancer;
      await writeFile(hostsPath, '127.0.0.4 svc.test\n');
      peer.proc.kill('SIGHUP');
      await waitFor(() => u.endpoints.some((e) => e.key === '127.0.0.4:8080'), 10_000);
      expect(u.endpoints.map((e) => e.key).sort()).toEqual(['127.0.0.1:8081', '127.0.0.4:8080']);
      expect(u.balancer).not.toBe(before);
      await expect(dns.resolve('missing.test')).rejects.toThrow();
    } finally {
      cache.close();
      dns.close();
    }
  });
});

describe('UpstreamCache', () => {
  it('reuses unchanged runtimes and retires pools no endpoint uses', async () => {
    const pools = new Pools();
    const a = { nodes: { '127.0.0.1:1980': 1 } };
    const b = { nodes: { '127.0.0.1:1981': 1 } };
    const c1 = await UpstreamCache.build(null, [['a', a], ['b', b], ['bad', { type: 'nope', nodes: {} }]], { registry, pools });
    expect(c1.errors.get('bad')).toMatch(/unknown balancer/);
    const ua = c1.get('a')!;
    const ub = c1.get('b')!;
    const pa = ua.pool(ua.endpoints[0]!);
    pools.get(ub, ub.endpoints[0]!);
    expect(pools.get(ua, ua.endpoints[0]!)).toBe(pa);
    expect(pools.size()).toBe(2);

    // b changes its timeout only (same endpoint and pool settings): new runtime, pool kept
    const b2 = { ...b, timeout: { connect: 60, send: 60, read: 5 } };
    const c2 = await UpstreamCache.build(c1, [['a', a], ['b', b2]], { registry, pools });
    expect(c2.get('a')).toBe(ua);
    expect(c2.get('b')).not.toBe(ub);
    expect(pools.size()).toBe(2);
    expect(pools.get(c2.get('b')!, c2.get('b')!.endpoints[0]!).dispatcher).toBe(pools.get(ub, ub.endpoints[0]!).dispatcher);

    // b moves to another port: its old pool is retired
    const c3 = await UpstreamCache.build(c2, [['a', a], ['b', { nodes: { '127.0.0.1:1982': 1 } }]], { registry, pools });
    expect(pools.size()).toBe(1);
    expect(pools.get(c3.get('a')!, ua.endpoints[0]!)).toBe(pa);
    c3.close();
    await pools.close();
  });
});

describe('UpstreamCache.buildSync', () => {
  it('builds at once and adds hostname endpoints when DNS answers', async () => {
    const dns = new DnsCache({ servers: ['127.0.0.1:9'], timeoutMs: 200, tries: 1 });
    const pools = new Pools();
    try {
      const c = UpstreamCache.buildSync(null, [['h', { nodes: { 'localhost:1990': 1 } }], ['i', { nodes: { '127.0.0.1:1991': 1 } }]], { registry, dns, pools });
      expect(c.get('i')!.endpoints.length).toBe(1);
      const h = c.get('h')!;
      await h.ready();
      expect(h.endpoints.map((e) => e.key)).toEqual(['127.0.0.1:1990']);
      expect(h.pool(h.endpoints[0]!).endpoint).toBe(h.endpoints[0]);
      c.close();
    } finally {
      dns.close();
      await pools.close();
    }
  });
});
