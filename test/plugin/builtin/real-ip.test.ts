import { describe, expect, it } from 'vitest';
import { parseAddress, pickForwardedFor, realIpPlugin as def } from '../../../src/plugin/builtin/real-ip.ts';
import { IpMatcher } from '../../../src/router/cidr.ts';
import { confError, fakeContext, instantiate } from '../helpers.ts';

describe('real-ip', () => {
  it('validates like APISIX', () => {
    expect(confError(def, {})).not.toBeNull();
    expect(confError(def, { source: 'http_x_forwarded_for', trusted_addresses: ['10.0.0.0/33'] })).toMatch(/invalid ip/);
    expect(confError(def, { source: 'arg_realip', trusted_addresses: ['127.0.0.0/24', '::1'] })).toBeNull();
  });

  it('parses addresses with optional ports', () => {
    expect(parseAddress('1.2.3.4')).toEqual({ ip: '1.2.3.4', port: undefined });
    expect(parseAddress(' 1.2.3.4:9080 ')).toEqual({ ip: '1.2.3.4', port: 9080 });
    expect(parseAddress('::1')).toEqual({ ip: '::1', port: undefined });
    expect(parseAddress('[2001:db8::1]:80')).toEqual({ ip: '2001:db8::1', port: 80 });
    expect(parseAddress('example.com')).toBeNull();
    expect(parseAddress('1.2.3.4:99999')).toBeNull();
  });

  it('picks from X-Forwarded-For: last, or last untrusted when recursive', () => {
    const trusted = IpMatcher.compile(['10.0.0.0/8']);
    expect(pickForwardedFor('1.1.1.1, 2.2.2.2, 10.0.0.1', trusted, false)).toBe('10.0.0.1');
    expect(pickForwardedFor('1.1.1.1, 2.2.2.2, 10.0.0.1', trusted, true)).toBe('2.2.2.2');
    expect(pickForwardedFor('10.0.0.3, 10.0.0.1', trusted, true)).toBe('10.0.0.3');
  });

  it('sets remote_addr/remote_port for later plugins and keeps the originals', () => {
    const inst = instantiate(def, { source: 'arg_realip', trusted_addresses: ['127.0.0.0/24'] });
    const ctx = fakeContext({ vars: { arg_realip: '1.2.3.4:9080' } });
    inst.rewrite!(ctx);
    expect(ctx.vars.get('remote_addr')).toBe('1.2.3.4');
    expect(ctx.vars.get('remote_port')).toBe(9080);
    expect(ctx.vars.get('realip_remote_addr')).toBe('127.0.0.1');
    expect(ctx.vars.get('realip_remote_port')).toBe(40000);
  });

  it('ignores untrusted peers and invalid values', () => {
    const inst = instantiate(def, { source: 'http_x_forwarded_for', trusted_addresses: ['10.0.0.0/8'] });
    const untrusted = fakeContext({ remoteAddr: '192.168.1.1', headers: { 'x-forwarded-for': '1.2.3.4' } });
    inst.rewrite!(untrusted);
    expect(untrusted.vars.get('remote_addr')).toBe('192.168.1.1');
    const bad = fakeContext({ remoteAddr: '10.1.1.1', headers: { 'x-forwarded-for': 'garbage' } });
    inst.rewrite!(bad);
    expect(bad.vars.get('remote_addr')).toBe('10.1.1.1');
    const good = fakeContext({ remoteAddr: '10.1.1.1', headers: { 'x-forwarded-for': '5.5.5.5, 6.6.6.6' } });
    inst.rewrite!(good);
    expect(good.vars.get('remote_addr')).toBe('6.6.6.6');
  });
});
