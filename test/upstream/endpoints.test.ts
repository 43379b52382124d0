import { describe, expect, it } from 'vitest';
import { buildEndpoints, defaultPort, hostnamesOf, parseNodes, splitHostPort } from '../../src/upstream/endpoints.ts';
import { parseHosts } from '../../src/upstream/dns.ts';

describe('parseNodes', () => {
  it('map form with default ports per scheme and bracketed IPv6', () => {
    const nodes = parseNodes({ nodes: { '127.0.0.1:1980': 1, '[::1]:8080': 2, 'example.com': 0, '[fe80::1]': 3 } });
    expect(nodes.map((n) => [n.host, n.port, n.weight, n.priority, n.isIp])).toEqual([
      ['127.0.0.1', 1980, 1, 0, true],
      ['::1', 8080, 2, 0, true],
      ['example.com', 80, 0, 0, false],
      ['fe80::1', 80, 3, 0, true],
    ]);
    expect(parseNodes({ scheme: 'https', nodes: { 'a.test': 1 } })[0]!.port).toBe(443);
    expect(parseNodes({ scheme: 'grpcs', nodes: { 'a.test': 1 } })[0]!.port).toBe(443);
    expect(parseNodes({ scheme: 'grpc', nodes: { 'a.test': 1 } })[0]!.port).toBe(80);
  });

  it('array form with priority, metadata and default weight', () => {
    const nodes = parseNodes({
      scheme: 'https',
      nodes: [
        { host: '10.0.0.1', port: 9000, weight: 5, priority: 2, metadata: { zone: 'a' } },
        { host: '[::2]', weight: 1 },
        { host: 'svc.local' },
      ],
    });
    expect(nodes[0]).toEqual({ host: '10.0.0.1', port: 9000, weight: 5, priority: 2, metadata: { zone: 'a' }, isIp: true });
    expect(nodes[1]).toMatchObject({ host: '::2', port: 443, weight: 1, priority: 0 });
    expect(nodes[2]).toMatchObject({ host: 'svc.local', port: 443, weight: 1, isIp: false });
  });

  it('L4 schemes need explicit ports; bad input is rejected', () => {
    expect(() => parseNodes({ scheme: 'tcp', nodes: { '127.0.0.1': 1 } })).toThrow(/needs a port/);
    expect(() => parseNodes({ scheme: 'udp', nodes: [{ host: '127.0.0.1', weight: 1 }] })).toThrow(/needs a port/);
    expect(parseNodes({ scheme: 'tls', nodes: { '127.0.0.1:9443': 1 } })[0]!.port).toBe(9443);
    expect(() => parseNodes({ nodes: { '127.0.0.1:0': 1 } })).toThrow(/invalid port/);
    expect(() => parseNodes({ nodes: { '127.0.0.1:80': -1 } })).toThrow(/negative/);
    expect(() => parseNodes({ nodes: { '[::1': 1 } })).toThrow(/invalid node address/);
    expect(parseNodes({})).toEqual([]);
    expect(defaultPort('tcp')).toBeNull();
    expect(splitHostPort('::1')).toEqual({ host: '::1', port: null });
  });
});

describe('buildEndpoints', () => {
  it('keys ip:port, keeps the domain, one endpoint per resolved address, drops duplicates', () => {
    const nodes = parseNodes({ nodes: [
      { host: 'svc.test', port: 8080, weight: 2 },
      { host: '::1', port: 81, weight: 1 },
      { host: '10.0.0.2', port: 8080, weight: 9 },
      { host: 'pending.test', port: 80, weight: 1 },
    ] });
    expect(hostnamesOf(nodes)).toEqual(['svc.test', 'pending.test']);
    const eps = buildEndpoints(nodes, (h) => (h === 'svc.test' ? ['10.0.0.1', '10.0.0.2'] : undefined));
    expect(eps.map((e) => [e.key, e.host, e.domain, e.weight])).toEqual([
      ['10.0.0.1:8080', '10.0.0.1', 'svc.test', 2],
      ['10.0.0.2:8080', '10.0.0.2', 'svc.test', 2],
      ['[::1]:81', '::1', '::1', 1],
    ]);
  });

  it('parses hosts files', () => {
    const m = parseHosts('# c\n127.0.0.1 localhost  Local # x\n::1 localhost ip6-localhost\nbad line\n');
    expect(m.get('localhost')).toEqual(['127.0.0.1', '::1']);
    expect(m.get('local')).toEqual(['127.0.0.1']);
    expect(m.has('bad')).toBe(false);
  });
});
