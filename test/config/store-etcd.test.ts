import { rm } from 'node:fs/promises';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdStore, createEtcdStore } from '../../src/config/store-etcd.ts';
import type { ConfigEvent } from '../../src/config/store.ts';
import { isSwitchyardError } from '../../src/errors.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startEtcd, type EtcdPeer } from '../helpers/etcd.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/proc.ts';

let etcd: EtcdPeer;
const stores: EtcdStore[] = [];
let n = 0;

async function open(prefix = `/t${++n}`): Promise<EtcdStore> {
  const s = new EtcdStore({ hosts: [etcd.endpoint], prefix, timeoutSec: 3, logger: silentLogger });
  stores.push(s);
  await s.start();
  return s;
}

function record(s: EtcdStore): { batches: { events: ConfigEvent[]; revision: number }[]; resyncs: number[] } {
  const out = { batches: [] as { events: ConfigEvent[]; revision: number }[], resyncs: [] as number[] };
  s.on('change', (events: ConfigEvent[], revision: number) => out.batches.push({ events, revision }));
  s.on('resync', (revision: number) => out.resyncs.push(revision));
  return out;
}

/** A loopback TCP relay to etcd that can drop every connection and refuse new ones (a network outage). */
async function relay(target: number): Promise<{ port: number; cut(): Promise<void>; heal(): Promise<void>; close(): Promise<void> }> {
  const port = await freePort();
  const socks = new Set<net.Socket>();
  let server: net.Server | null = null;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const srv = net.createServer((down) => {
        const up = net.connect(target, '127.0.0.1');
        socks.add(down).add(up);
        down.pipe(up).pipe(down);
        const drop = () => {
          down.destroy();
          up.destroy();
          socks.delete(down);
          socks.delete(up);
        };
        down.on('error', drop).on('close', drop);
        up.on('error', drop).on('close', drop);
      });
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => resolve());
      server = srv;
    });
  const cut = async () => {
    const srv = server;
    server = null;
    for (const s of socks) s.destroy();
    socks.clear();
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  };
  await listen();
  return { port, cut, heal: listen, close: cut };
}

beforeAll(async () => {
  etcd = await startEtcd();
});

afterAll(async () => {
  for (const s of stores) await s.close();
  await etcd?.stop();
});

describe('EtcdStore', () => {
  it('loads the prefix, skipping placeholders and invalid JSON', async () => {
    await etcd.etcdctl('put', '/l/routes/1', '{"id":"1","uri":"/a"}');
    await etcd.etcdctl('put', '/l/routes/init_dir', '');
    await etcd.etcdctl('put', '/l/gen_id', '7');
    await etcd.etcdctl('put', '/l/plugins', '[{"name":"x"}]');
    await etcd.etcdctl('put', '/l/routes/bad', '{not json');
    await etcd.etcdctl('put', '/l/routes/arr', '[1]');
    await etcd.etcdctl('put', '/l/consumers/jack', '{"username":"jack"}');
    await etcd.etcdctl('put', '/l/consumers/jack/credentials/c1', '{"plugins":{}}');
    await etcd.etcdctl('put', '/l/secrets/vault/s1', '{"uri":"http://v"}');
    await etcd.etcdctl('put', '/lx/routes/9', '{"id":"9"}');
    const s = await open('/l');
    expect(s.ready).toBe(true);
    expect(s.list('routes').map((i) => i.id)).toEqual(['1']);
    const r = s.get('routes', '1')!;
    expect(r.key).toBe('/l/routes/1');
    expect(r.value).toEqual({ id: '1', uri: '/a' });
    expect(r.createdIndex).toBeGreaterThan(0);
    expect(s.get('consumers', 'jack')?.value).toEqual({ username: 'jack' });
    expect(s.get('credentials', 'jack/credentials/c1')).toBeDefined();
    expect(s.get('secrets', 'vault/s1')).toBeDefined();
    expect(s.all()).toHaveLength(4);
    expect(s.revision).toBeGreaterThanOrEqual(r.modifiedIndex);
  });

  it('propagates puts and deletes from any writer, batched with the revision', async () => {
    const s = await open();
    const rec = record(s);
    const w = await s.put('routes', 'r1', { id: 'r1', uri: '/x' });
    expect(w.created).toBe(true);
    expect(w.item.modifiedIndex).toBe(w.item.createdIndex);
    await waitFor(() => s.get('routes', 'r1'));
    expect(s.get('routes', 'r1')!.modifiedIndex).toBe(w.item.modifiedIndex);
    const w2 = await s.put('routes', 'r1', { id: 'r1', uri: '/y' });
    expect(w2.created).toBe(false);
    expect(w2.item.createdIndex).toBe(w.item.createdIndex);
    expect(w2.item.modifiedIndex).toBeGreaterThan(w.item.modifiedIndex);
    await etcd.etcdctl('put', `${s.prefix}/upstreams/u1`, '{"nodes":{"127.0.0.1:1":1}}');
    await waitFor(() => s.get('upstreams', 'u1'));
    expect(await s.delete('routes', 'r1')).toMatchObject({ id: 'r1', value: { uri: '/y' } });
    expect(await s.delete('routes', 'r1')).toBeUndefined();
    await waitFor(() => !s.get('routes', 'r1'));
    const flat = rec.batches.flatMap((b) => b.events.map((e) => `${e.type}:${e.kind}/${e.id}`));
    expect(flat).toEqual(['put:routes/r1', 'put:routes/r1', 'put:upstreams/u1', 'delete:routes/r1']);
    const revs = rec.batches.map((b) => b.revision);
    expect([...revs].sort((a, b) => a - b)).toEqual(revs);
    expect(s.revision).toBe(revs[revs.length - 1]);

    // One deleteRange touching two keys arrives as one batch.
    await s.put('credentials', 'u/credentials/1', { id: '1' });
    await s.put('credentials', 'u/credentials/2', { id: '2' });
    await waitFor(() => s.list('credentials').length === 2);
    const before = rec.batches.length;
    expect(await s.deletePrefix('consumers', 'u')).toBe(2);
    await waitFor(() => s.list('credentials').length === 0);
    expect(rec.batches.slice(before).map((b) => b.events.length)).toEqual([2]);
  });

  it('reads directly with fetch/fetchList and deletes credentials by prefix', async () => {
    const s = await open();
    await s.put('consumers', 'jack', { username: 'jack' });
    await s.put('credentials', 'jack/credentials/a', { id: 'a' });
    await s.put('credentials', 'jack/credentials/b', { id: 'b' });
    await s.put('credentials', 'jill/credentials/c', { id: 'c' });
    expect((await s.fetch('credentials', 'jack/credentials/a'))?.value).toEqual({ id: 'a' });
    expect(await s.fetch('routes', 'nope')).toBeUndefined();
    expect((await s.fetchList('credentials')).map((i) => i.id)).toEqual([
      'jack/credentials/a',
      'jack/credentials/b',
      'jill/credentials/c',
    ]);
    expect((await s.fetchList('consumers')).map((i) => i.id)).toEqual(['jack']);
    expect(await s.deletePrefix('credentials', 'jack')).toBe(2);
    expect((await s.fetchList('credentials')).map((i) => i.id)).toEqual(['jill/credentials/c']);
    expect(await s.fetch('consumers', 'jack')).toBeDefined();
    await waitFor(() => s.list('credentials').length === 1);
  });

  it('generates 20-digit monotonic ids from /gen_id revisions', async () => {
    const s = await open();
    const a = await s.nextId();
    const b = await s.nextId();
    expect(a).toMatch(/^\d{20}$/);
    expect(BigInt(b)).toBeGreaterThan(BigInt(a));
    expect(s.all()).toHaveLength(0);
  });

  it('compare-and-swap on modifiedIndex', async () => {
    const s = await open();
    const created = await s.put('routes', 'c', { v: 1 }, { expectModifiedIndex: 0 });
    expect(created.created).toBe(true);
    await expect(s.put('routes', 'c', { v: 2 }, { expectModifiedIndex: 0 })).rejects.toSatisfy((e) =>
      isSwitchyardError(e, 'SWY_ERR_STORE_CONFLICT'),
    );
    await expect(
      s.put('routes', 'c', { v: 2 }, { expectModifiedIndex: created.item.modifiedIndex - 1 }),
    ).rejects.toSatisfy((e) => isSwitchyardError(e, 'SWY_ERR_STORE_CONFLICT'));
    const ok = await s.put('routes', 'c', { v: 2 }, { expectModifiedIndex: created.item.modifiedIndex });
    expect(ok.created).toBe(false);
    expect(ok.item.createdIndex).toBe(created.item.createdIndex);
    expect((await s.fetch('routes', 'c'))?.value).toEqual({ v: 2 });
  });

  it('expires ttl writes through an etcd lease', async () => {
    const s = await open();
    const rec = record(s);
    await s.put('routes', 'tmp', { id: 'tmp' }, { ttl: 1 });
    await s.put('routes', 'stay', { id: 'stay' });
    await waitFor(() => s.get('routes', 'tmp'));
    await waitFor(() => !s.get('routes', 'tmp'), 15_000, 100);
    expect(s.get('routes', 'stay')).toBeDefined();
    expect(rec.batches.flatMap((b) => b.events).some((e) => e.type === 'delete' && e.id === 'tmp')).toBe(true);
  });

  it('loses nothing across a compaction while watching', async () => {
    const s = await open();
    for (let i = 0; i < 5; i++) await s.put('routes', `k${i}`, { i });
    await waitFor(() => s.list('routes').length === 5);
    const keep = s.get('routes', 'k0')!;
    await s.put('routes', 'k1', { i: 11 });
    await s.delete('routes', 'k2');
    const { item } = await s.put('routes', 'k3', { i: 33 });
    await etcd.etcdctl('compact', String(item.modifiedIndex));
    for (let i = 5; i < 10; i++) await s.put('routes', `k${i}`, { i });
    await etcd.etcdctl('put', `${s.prefix}/routes/ext`, '{"ext":true}');
    await waitFor(() => s.get('routes', 'ext'));
    expect(s.list('routes').map((i) => i.id).sort()).toEqual(
      ['ext', 'k0', 'k1', 'k3', 'k4', 'k5', 'k6', 'k7', 'k8', 'k9'].sort(),
    );
    expect(s.get('routes', 'k0')).toBe(keep);
    expect(s.get('routes', 'k1')!.value).toEqual({ i: 11 });
  });

  it('keeps the view while etcd is unreachable, then resyncs only the differences', async () => {
    const r = await relay(etcd.port);
    const s = new EtcdStore({ hosts: [`http://127.0.0.1:${r.port}`], prefix: '/out', timeoutSec: 2, logger: silentLogger });
    stores.push(s);
    try {
      const direct = await open('/out');
      for (const id of ['same', 'changed', 'gone']) await direct.put('routes', id, { id });
      await s.start();
      const same = s.get('routes', 'same')!;
      const rec = record(s);

      await r.cut();
      await expect(s.put('routes', 'x', {})).rejects.toSatisfy((e) => isSwitchyardError(e, 'SWY_ERR_STORE_UNAVAILABLE'));
      await direct.put('routes', 'changed', { id: 'changed', v: 2 });
      await direct.delete('routes', 'gone');
      const added = await direct.put('routes', 'added', { id: 'added' });
      await etcd.etcdctl('compact', String(added.item.modifiedIndex));
      expect(s.list('routes').map((i) => i.id).sort()).toEqual(['changed', 'gone', 'same']);

      await r.heal();
      await waitFor(() => rec.resyncs.length > 0, 20_000, 100);
      const events = rec.batches.flatMap((b) => b.events.map((e) => `${e.type}:${e.id}`)).sort();
      expect(events).toEqual(['delete:gone', 'put:added', 'put:changed']);
      expect(s.get('routes', 'same')).toBe(same);
      expect(s.get('routes', 'changed')!.value).toEqual({ id: 'changed', v: 2 });
      expect(s.revision).toBeGreaterThanOrEqual(added.item.modifiedIndex);
      await direct.put('routes', 'after', { id: 'after' });
      await waitFor(() => s.get('routes', 'after'), 10_000);
    } finally {
      await s.close();
      await r.close();
    }
  });

  it('rejects start() when etcd is unreachable', async () => {
    const port = await freePort();
    const s = new EtcdStore({ hosts: [`http://127.0.0.1:${port}`], prefix: '/x', timeoutSec: 1, logger: silentLogger, startupRetries: 1 });
    stores.push(s);
    await expect(s.start()).rejects.toSatisfy((e) => isSwitchyardError(e, 'SWY_ERR_STORE_UNAVAILABLE'));
    expect(s.ready).toBe(false);
  });

  it('survives SIGKILL and restart of etcd: keeps the view, fails writes, resumes the watch from its revision', async () => {
    const s = (await createEtcdStore({ hosts: [etcd.endpoint], prefix: '/kr', timeoutSec: 2, logger: silentLogger })) as EtcdStore;
    stores.push(s);
    const other = await open('/kr');
    const rec = record(s);
    await s.put('routes', 'a', { id: 'a' });
    await s.put('routes', 'b', { id: 'b' });
    await waitFor(() => s.list('routes').length === 2);
    const a = s.get('routes', 'a')!;

    await etcd.kill();
    await expect(s.put('routes', 'c', { id: 'c' })).rejects.toSatisfy((e) =>
      isSwitchyardError(e, 'SWY_ERR_STORE_UNAVAILABLE'),
    );
    await expect(s.nextId()).rejects.toSatisfy((e) => isSwitchyardError(e, 'SWY_ERR_STORE_UNAVAILABLE'));
    expect(s.get('routes', 'a')).toBe(a);
    expect(s.list('routes')).toHaveLength(2);

    await etcd.restart();
    // Written before the store's watch is back: the resumed watch starts at the store's revision and sees it.
    await etcd.etcdctl('put', '/kr/routes/later', '{"id":"later"}');
    await waitFor(() => s.get('routes', 'later'), 15_000, 50);
    expect(s.get('routes', 'a')).toBe(a);
    await s.delete('routes', 'b');
    await waitFor(() => !s.get('routes', 'b'), 15_000, 50);
    await waitFor(() => other.get('routes', 'later') && !other.get('routes', 'b'), 15_000, 100);
    expect(s.get('routes', 'a')).toBe(a);
    expect(other.list('routes').map((i) => i.id).sort()).toEqual(['a', 'later']);
    // Same history (revision not behind, nothing compacted): no full re-read was needed.
    expect(rec.resyncs).toEqual([]);
    expect(rec.batches.flatMap((b) => b.events.map((e) => `${e.type}:${e.id}`))).toEqual(['put:a', 'put:b', 'put:later', 'delete:b']);
  });

  it('follows an etcd that restarted with its data wiped (smaller revision)', async () => {
    const s = await open('/wipe');
    const rec = record(s);
    for (let i = 0; i < 3; i++) await s.put('routes', `w${i}`, { i });
    await waitFor(() => s.list('routes').length === 3);
    const oldRev = s.revision;
    await etcd.kill();
    await rm(etcd.dataDir, { recursive: true, force: true });
    await etcd.restart();
    await etcd.etcdctl('put', '/wipe/routes/w0', '{"fresh":true}');
    await waitFor(() => s.get('routes', 'w0')?.value.fresh === true && s.list('routes').length === 1, 20_000, 100);
    expect(s.revision).toBeLessThan(oldRev);
    expect(rec.resyncs.length).toBeGreaterThan(0);
    // w0 is deleted too when the resync ran before the new write.
    const deleted = rec.batches.flatMap((b) => b.events).filter((e) => e.type === 'delete').map((e) => e.id);
    expect(deleted).toEqual(expect.arrayContaining(['w1', 'w2']));
  });
});
