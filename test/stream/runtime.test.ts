// Stream runtime construction from a snapshot: service merge, broken references, upstream reuse across
// snapshots; and the shared certificate store TLS stream listeners read (its contexts reused across snapshots).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredItem } from '../../src/config/resources.ts';
import { buildSnapshot } from '../../src/config/snapshot.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { tempDir } from '../helpers/proc.ts';
import { buildCertificateStore, type CertificateStore } from '../../src/tls/store.ts';
import { StreamRuntimeBuilder } from '../../stream-routes/runtime.ts';
import type { StreamRuntime } from '../../stream-routes/types.ts';
import { item, registries } from './fixtures.ts';

let tmp: { dir: string; cleanup(): Promise<void> };
let cert = '';
let key = '';

beforeAll(async () => {
  tmp = await tempDir('swy-stream-rt-');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-days', '1', '-subj', '/CN=x.test'],
    { cwd: tmp.dir, stdio: 'pipe' },
  );
  cert = readFileSync(path.join(tmp.dir, 'c.pem'), 'utf8');
  key = readFileSync(path.join(tmp.dir, 'k.pem'), 'utf8');
});

afterAll(async () => {
  await tmp?.cleanup();
});

function builder(): { build(items: StoredItem[]): StreamRuntime; certificates(): CertificateStore } {
  const { plugins, balancers } = registries();
  const b = new StreamRuntimeBuilder({ plugins, balancers, logger: silentLogger });
  let prev: StreamRuntime | null = null;
  let certs: CertificateStore | null = null;
  let rev = 0;
  return {
    build(items) {
      const snap = buildSnapshot(items, ++rev, { plugins });
      expect(snap.errors).toEqual([]);
      prev = b.build(snap, prev);
      certs = buildCertificateStore(snap, certs, silentLogger);
      return prev;
    },
    certificates: () => certs!,
  };
}

const q = { serverAddr: '127.0.0.1', serverPort: 9100, remoteAddr: '127.0.0.1' };

describe('stream runtime', () => {
  it('merges the service: route plugins win, service plugins fill gaps, service upstream as fallback', () => {
    const rt = builder().build([
      item('services', 's1', {
        plugins: { 'ip-restriction': { blacklist: ['10.0.0.1'] }, 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr' } },
        upstream: { nodes: { '127.0.0.1:7000': 1 } },
      }),
      item('stream_routes', 'r1', { service_id: 's1', plugins: { 'ip-restriction': { whitelist: ['127.0.0.1'] } } }),
    ]);
    const route = rt.router.match(q)!;
    expect(route.id).toBe('r1');
    expect(route.chain.names()).toEqual(['ip-restriction', 'limit-conn']);
    expect(route.chain.step('ip-restriction')!.conf.whitelist).toEqual(['127.0.0.1']);
    expect(route.upstream?.endpoints.map((e) => e.key)).toEqual(['127.0.0.1:7000']);
    expect(route.broken).toBeNull();
  });

  it('marks routes whose service or upstream is missing as broken', () => {
    const rt = builder().build([
      item('stream_routes', 'a', { server_port: 1, service_id: 'nope' }),
      item('stream_routes', 'b', { server_port: 9100, upstream_id: 'missing' }),
    ]);
    expect(rt.router.match(q)!.broken).toMatch(/missing upstream missing/);
    expect(rt.router.match({ ...q, serverPort: 1 })!.broken).toMatch(/missing service nope/);
  });

  it('reuses unchanged upstream runtimes and TLS contexts across snapshots', () => {
    const b = builder();
    const base = [
      item('upstreams', 'u1', { nodes: { '127.0.0.1:7001': 1 } }),
      item('ssls', 'x', { sni: '*.x.test', cert, key }),
      item('stream_routes', 'r', { upstream_id: 'u1' }),
    ];
    const one = b.build(base);
    const ctx1 = b.certificates().lookup('a.x.test')?.context;
    expect(ctx1).toBeDefined();
    expect(b.certificates().lookup('a.b.x.test')?.context).toBeUndefined();
    expect(b.certificates().lookup('x.test')?.context).toBeUndefined();
    const two = b.build([...base, item('stream_routes', 'other', { server_port: 1, upstream: { nodes: { '127.0.0.1:7002': 1 } } })]);
    expect(two.router.match(q)!.upstream).toBe(one.router.match(q)!.upstream);
    expect(b.certificates().lookup('a.x.test')?.context).toBe(ctx1);
    const three = b.build([item('upstreams', 'u1', { nodes: { '127.0.0.1:7003': 1 } }), item('ssls', 'x', { sni: '*.x.test', cert, key }), base[2]!]);
    expect(three.router.match(q)!.upstream).not.toBe(one.router.match(q)!.upstream);
    expect(b.certificates().lookup('A.X.test')?.context).not.toBe(ctx1);
    expect(three.resolveUpstream('u1')).toBe(three.router.match(q)!.upstream);
  });
});
