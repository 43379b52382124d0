import tls from 'node:tls';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { parseClientHello } from '../../src/tls/client-hello.ts';
import { parseStreamProxyConf } from '../../protocols/stream/conf.ts';
import { buildProxyHeader, parseProxyHeader } from '../../protocols/stream/proxy-protocol.ts';

/** Captures the ClientHello a real Node TLS client sends. */
async function captureHello(servername: string | undefined): Promise<Buffer> {
  return await new Promise<Buffer>((resolve, reject) => {
    const srv = net.createServer((s) => {
      s.once('data', (d) => {
        resolve(d);
        s.destroy();
        srv.close();
      });
    });
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      const c = tls.connect({ port, host: '127.0.0.1', ...(servername ? { servername } : {}), rejectUnauthorized: false });
      c.on('error', () => undefined);
    });
    srv.on('error', reject);
  });
}

describe('ClientHello SNI peek', () => {
  it('reads the SNI of a real ClientHello, also when it arrives in pieces', async () => {
    const hello = await captureHello('Passthrough.Example.com');
    expect(parseClientHello(hello)).toEqual({ kind: 'tls', sni: 'passthrough.example.com' });
    const partial = parseClientHello(hello.subarray(0, 20));
    expect(partial.kind).toBe('need');
    expect(parseClientHello(hello.subarray(0, 2))).toEqual({ kind: 'need', bytes: 5 });
  });

  it('reports no SNI when the client sent none, and not_tls for other protocols', async () => {
    const hello = await captureHello(undefined);
    expect(parseClientHello(hello)).toEqual({ kind: 'tls', sni: undefined });
    expect(parseClientHello(Buffer.from('*1\r\n$4\r\nPING\r\n'))).toEqual({ kind: 'not_tls' });
    expect(parseClientHello(Buffer.from([0x10, 0x0c, 0x00]))).toEqual({ kind: 'not_tls' });
  });
});

describe('PROXY protocol', () => {
  it('round-trips v1 and v2 for IPv4 and IPv6', () => {
    for (const v of ['v1', 'v2'] as const) {
      const h4 = buildProxyHeader(v, { addr: '10.0.0.1', port: 1234 }, { addr: '127.0.0.1', port: 9100 });
      expect(parseProxyHeader(Buffer.concat([h4, Buffer.from('payload')]))).toEqual({
        kind: 'ok',
        length: h4.length,
        source: { addr: '10.0.0.1', port: 1234 },
        dest: { addr: '127.0.0.1', port: 9100 },
      });
      const h6 = buildProxyHeader(v, { addr: '2001:db8::1', port: 1 }, { addr: '::1', port: 2 });
      const r = parseProxyHeader(h6);
      expect(r.kind).toBe('ok');
      if (r.kind === 'ok') {
        expect(net.isIPv6(r.source!.addr)).toBe(true);
        expect(new net.SocketAddress({ address: r.source!.addr, family: 'ipv6' }).address).toBe(
          new net.SocketAddress({ address: '2001:db8::1', family: 'ipv6' }).address,
        );
      }
    }
    expect(buildProxyHeader('v1', { addr: '10.0.0.1', port: 1 }, { addr: '::1', port: 2 }).toString()).toBe('PROXY UNKNOWN\r\n');
  });

  it('asks for more bytes on partial headers and rejects garbage', () => {
    const h = buildProxyHeader('v1', { addr: '10.0.0.1', port: 1234 }, { addr: '127.0.0.1', port: 9100 });
    expect(parseProxyHeader(h.subarray(0, 10)).kind).toBe('need');
    expect(parseProxyHeader(Buffer.from('GET / HTTP/1.1\r\n'))).toEqual({ kind: 'error', reason: 'missing PROXY protocol header' });
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3 4.5.6.7 1 2\r\n')).kind).toBe('error');
  });
});

describe('parseStreamProxyConf', () => {
  it('accepts every APISIX entry form', () => {
    const c = parseStreamProxyConf(
      {
        tcp: [9100, '127.0.0.2:9101', '9200-9202', { addr: 9300, tls: true }, { addr: '[::1]:9400', proxy_protocol: true, proxy_protocol_to_upstream: 'v2' }],
        udp: [9500, '127.0.0.1:9501'],
      },
      { defaultIp: '127.0.0.1' },
    );
    expect(c.tcp.map((t) => t.addr)).toEqual([
      '127.0.0.1:9100',
      '127.0.0.2:9101',
      '127.0.0.1:9200',
      '127.0.0.1:9201',
      '127.0.0.1:9202',
      '127.0.0.1:9300',
      '[::1]:9400',
    ]);
    expect(c.tcp[5]!.tls).toBe(true);
    expect(c.tcp[6]).toMatchObject({ proxyProtocol: true, proxyProtocolToUpstream: 'v2' });
    expect(c.udp.map((u) => u.addr)).toEqual(['127.0.0.1:9500', '127.0.0.1:9501']);
    expect(parseStreamProxyConf({ tcp: [9100] }).tcp[0]!.addr).toBe('0.0.0.0:9100');
  });

  it('applies apisix.proxy_protocol globally and rejects bad entries', () => {
    const c = parseStreamProxyConf({ tcp: [9100] }, { proxyProtocol: { enable_tcp_pp: true, enable_tcp_pp_to_upstream: true } });
    expect(c.tcp[0]).toMatchObject({ proxyProtocol: true, proxyProtocolToUpstream: 'v1' });
    expect(() => parseStreamProxyConf({ tcp: [70000] })).toThrow(/invalid port/);
    expect(() => parseStreamProxyConf({ tcp: ['9000-8000'] })).toThrow(/range/);
    expect(() => parseStreamProxyConf({ tcp: [9100, '0.0.0.0:9100'] })).toThrow(/duplicate/);
  });
});
