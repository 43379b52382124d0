import { describe, expect, it } from 'vitest';
import { buildStreamRouter, normalizeAddr } from '../../stream-routes/router.ts';

const r = (id: string, value: Record<string, unknown>) => ({ id, value: value as never });
const q = (over: Partial<{ serverAddr: string; serverPort: number; remoteAddr: string; sni: string }> = {}) => ({
  serverAddr: '127.0.0.1',
  serverPort: 9100,
  remoteAddr: '10.1.2.3',
  ...over,
});

describe('stream router', () => {
  it('scans non-SNI routes in storage order; absent fields match anything', () => {
    const router = buildStreamRouter([
      r('a', { server_port: 9101 }),
      r('b', { remote_addr: '10.1.0.0/16' }),
      r('c', {}),
    ]);
    expect(router.match(q({ serverPort: 9101 }))?.id).toBe('a');
    expect(router.match(q())?.id).toBe('b');
    expect(router.match(q({ remoteAddr: '192.168.0.1' }))?.id).toBe('c');
  });

  it('matches remote_addr and server_addr as IP or CIDR (IPv4 and IPv6), server_port exactly', () => {
    const router = buildStreamRouter([
      r('v6', { remote_addr: '2001:db8::/32' }),
      r('exact', { remote_addr: '10.0.0.7', server_addr: '127.0.0.2', server_port: 9200 }),
    ]);
    expect(router.match(q({ remoteAddr: '2001:db8::1' }))?.id).toBe('v6');
    expect(router.match(q({ remoteAddr: '10.0.0.7', serverAddr: '127.0.0.2', serverPort: 9200 }))?.id).toBe('exact');
    expect(router.match(q({ remoteAddr: '10.0.0.7', serverAddr: '127.0.0.3', serverPort: 9200 }))).toBeNull();
    expect(router.match(q({ remoteAddr: '10.0.0.8', serverAddr: '127.0.0.2', serverPort: 9200 }))).toBeNull();
  });

  it('tries SNI routes first (exact, then longest wildcard suffix), case-insensitively, only with SNI', () => {
    const router = buildStreamRouter([
      r('plain', {}),
      r('wild', { sni: '*.example.com' }),
      r('wild-deep', { sni: '*.b.example.com' }),
      r('exact', { sni: 'API.example.com' }),
    ]);
    expect(router.hasSniRoutes).toBe(true);
    expect(router.match(q({ sni: 'api.EXAMPLE.com' }))?.id).toBe('exact');
    expect(router.match(q({ sni: 'x.example.com' }))?.id).toBe('wild');
    expect(router.match(q({ sni: 'a.b.example.com' }))?.id).toBe('wild-deep');
    expect(router.match(q({ sni: 'x.y.example.com' }))?.id).toBe('wild');
    expect(router.match(q({ sni: 'example.com' }))?.id).toBe('plain');
    expect(router.match(q())?.id).toBe('plain');
  });

  it('falls back to non-SNI routes when no SNI route passes its address checks', () => {
    const router = buildStreamRouter([r('sni', { sni: 'a.com', server_port: 1 }), r('other', { server_port: 9100 })]);
    expect(router.match(q({ sni: 'a.com' }))?.id).toBe('other');
  });

  it('never matches xRPC subordinate routes (protocol.superior_id)', () => {
    const router = buildStreamRouter([r('sub', { protocol: { name: 'redis', superior_id: 'x' } }), r('main', { server_port: 1 })]);
    expect(router.match(q())).toBeNull();
    expect(router.size).toBe(1);
  });

  it('unwraps IPv4-mapped IPv6 addresses', () => {
    expect(normalizeAddr('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeAddr('::1')).toBe('::1');
  });
});
