import { describe, expect, it } from 'vitest';
import { BlockList, isIP } from 'node:net';
import { IpMatcher, parseIPv4 } from '../../src/router/cidr.ts';

describe('IpMatcher', () => {
  it('parses IPv4 strictly', () => {
    expect(parseIPv4('0.0.0.0')).toBe(0);
    expect(parseIPv4('255.255.255.255')).toBe(0xffffffff);
    for (const bad of ['1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1..2.3', '', 'a.b.c.d', '1.2.3.4 ']) {
      expect(parseIPv4(bad)).toBe(-1);
    }
  });

  it('matches IPv4 addresses and CIDRs', () => {
    const m = IpMatcher.compile(['127.0.0.1', '192.168.0.0/16', '10.1.2.3/8', '0.0.0.0/32']);
    expect(m.match('127.0.0.1')).toBe(true);
    expect(m.match('127.0.0.2')).toBe(false);
    expect(m.match('192.168.200.7')).toBe(true);
    expect(m.match('192.169.0.1')).toBe(false);
    expect(m.match('10.255.0.1')).toBe(true);
    expect(m.match('not-an-ip')).toBe(false);
    expect(m.match('')).toBe(false);
    expect(IpMatcher.compile(['0.0.0.0/0']).match('8.8.8.8')).toBe(true);
  });

  it('matches IPv6 addresses and CIDRs, and IPv4-mapped addresses against IPv4 rules', () => {
    const m = IpMatcher.compile(['::1', 'fe80::/32', '2001:db8::/48', '127.0.0.0/8']);
    expect(m.match('::1')).toBe(true);
    expect(m.match('0:0:0:0:0:0:0:1')).toBe(true);
    expect(m.match('::2')).toBe(false);
    expect(m.match('fe80:0:abcd::1')).toBe(true);
    expect(m.match('fe80:1::1')).toBe(false);
    expect(m.match('2001:db8:0:ffff::1')).toBe(true);
    expect(m.match('2001:db8:1::1')).toBe(false);
    expect(m.match('::ffff:127.0.0.1')).toBe(true);
    expect(m.match('::ffff:128.0.0.1')).toBe(false);
    expect(m.match('fe80::1%eth0')).toBe(true);
    expect(m.match(':::1')).toBe(false);
    expect(IpMatcher.compile(['::/0']).match('abcd::1')).toBe(true);
  });

  it('agrees with node:net BlockList on a deterministic sample', () => {
    const rules = ['10.0.0.0/8', '172.16.0.0/12', '192.168.1.128/25', '2001:db8::/33', 'fd00::/8', '::1'];
    const m = IpMatcher.compile(rules);
    const bl = new BlockList();
    for (const r of rules) {
      const [addr, bits] = r.split('/');
      const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) bl.addAddress(addr, family);
      else bl.addSubnet(addr, Number(bits), family);
    }
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const firstV4 = [10, 172, 192, 11];
    for (let i = 0; i < 2000; i++) {
      const v4 = `${firstV4[rand(4)]}.${rand(2) ? 16 + rand(20) : 168}.${rand(2) ? 1 : rand(256)}.${rand(256)}`;
      expect(m.match(v4)).toBe(bl.check(v4, 'ipv4'));
      const head = rand(2) ? '2001:db8' : 'fd' + rand(256).toString(16).padStart(2, '0');
      const v6 = `${head}:${rand(65536).toString(16)}::${rand(65536).toString(16)}`;
      expect(m.match(v6)).toBe(bl.check(v6, 'ipv6'));
    }
  });

  it('rejects invalid entries with the APISIX message', () => {
    expect(() => IpMatcher.compile(['10.0.0.0/33'])).toThrow('invalid ip address: 10.0.0.0/33');
    expect(() => IpMatcher.compile(['::1/129'])).toThrow('invalid ip address: ::1/129');
    expect(() => IpMatcher.compile(['1.2.3.4/'])).toThrow('invalid ip address: 1.2.3.4/');
    expect(() => IpMatcher.compile(['host.example'])).toThrow('invalid ip address: host.example');
    expect(IpMatcher.check('::')).toBeNull();
    expect(IpMatcher.check(5)).toBe('invalid ip address: 5');
  });
});
