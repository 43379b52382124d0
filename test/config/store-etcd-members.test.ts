// EtcdStore across the members of a real 3-member etcd cluster (fail-over), and against one etcd behind two
// relays that can lose the answer of a request etcd did apply (what may be sent again, what may not).
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyEtcdError } from '../../src/config/etcd-members.ts';
import { EtcdStore } from '../../src/config/store-etcd.ts';
import type { ConfigEvent } from '../../src/config/store.ts';
import { isSwitchyardError } from '../../src/errors.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd-cluster.ts';
import { startEtcd, type EtcdPeer } from '../helpers/etcd.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/proc.ts';

let cluster: EtcdCluster;
let single: EtcdPeer;
const stores: EtcdStore[] = [];
let n = 0;

async function open(hosts: string[], prefix = `/m${++n}`): Promise<EtcdStore> {
  const s = new EtcdStore({ hosts, prefix, timeoutSec: 3, logger: silentLogger });
  stores.push(s);
  await s.start();
  return s;
}

beforeAll(async () => {
  [cluster, single] = await Promise.all([startEtcdCluster(3), startEtcd()]);
}, 60_000);

afterAll(async () => {
  for (const s of stores) await s.close();
  await Promise.all([cluster?.stop(), single?.stop()]);
});

const rev = async () => {
  const out = await single.etcdctl('endpoint', 'status', '-w', 'json');
  return Number((JSON.parse(out) as { Status: { header: { revision: number } } }[])[0]!.Status.header.revision);
};

describe('EtcdStore on a 3-member cluster', () => {
  it('with one member down, every call lands at the first attempt on a live member', async () => {
    const s = await open(cluster.endpoints);
    // A follower: with the leader gone, writes wait for an election (up to the 3 s deadline on a loaded
    // machine), which is fail-over of etcd itself, not of the store's member choice this test is about.
    const leader = await cluster.leader();
    const victim = cluster.members.find((m) => m !== leader)!;
    await victim.kill();
    try {
      const ids: string[] = [];
      // Enough calls that a random choice among 3 members would hit the dead one many times.
      for (let i = 0; i < 30; i++) {
        const w = await s.put('routes', `r${i % 5}`, { id: `r${i % 5}`, i });
        const cas = await s.put('upstreams', `u${i}`, { i }, { expectModifiedIndex: 0 });
        expect(cas.created).toBe(true);
        expect((await s.fetch('routes', `r${i % 5}`))?.value).toEqual({ id: `r${i % 5}`, i });
        expect(w.item.modifiedIndex).toBeGreaterThan(0);
        ids.push(await s.nextId());
        expect(await s.delete('upstreams', `u${i}`)).toMatchObject({ id: `u${i}` });
      }
      expect(new Set(ids).size).toBe(30);
      expect((await s.fetchList('routes')).map((i) => i.id).sort()).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
      await s.put('routes', 'ttl', { id: 'ttl' }, { ttl: 30 });
      await waitFor(() => s.get('routes', 'ttl') && s.get('routes', 'r4')?.value.i === 29, 5000, 10);
    } finally {
      await victim.start();
    }
  }, 40_000);

  it('a watch whose member dies resumes on another member from its revision: nothing lost, nothing re-read', async () => {
    // A follower: killing the leader would fail the writes below for an election, which is not this test's point.
    const leader = await cluster.leader();
    let s = await open(cluster.endpoints);
    for (let i = 0; i < 30 && (await waitFor(() => s.watching, 5000, 10)) === leader.endpoint; i++) {
      await s.close();
      s = await open(cluster.endpoints);
    }
    const writer = await open(cluster.endpoints, s.prefix);
    const batches: ConfigEvent[] = [];
    const resyncs: number[] = [];
    s.on('change', (events: ConfigEvent[]) => batches.push(...events));
    s.on('resync', (r: number) => resyncs.push(r));
    const host = s.watching!;
    expect(host).not.toBe(leader.endpoint);
    const victim = cluster.members.find((m) => m.endpoint === host)!;
    await victim.kill();
    const killedAt = performance.now();
    try {
      // Written while the watch has no member: the resumed watch must deliver every one, in order.
      const written: number[] = [];
      for (let i = 0; i < 20; i++) written.push((await writer.put('routes', `w${i}`, { i })).item.modifiedIndex);
      await waitFor(() => s.get('routes', 'w0'), 5000, 2);
      const firstSeen = performance.now() - killedAt;
      await waitFor(() => s.list('routes').length === 20, 5000, 10);
      const moved = await waitFor(() => s.watching, 5000, 10);
      console.log(`[etcd] watch on ${host} lost by SIGKILL: resumed on ${moved}, first write after the kill seen in ${firstSeen.toFixed(1)} ms`);
      expect(moved).not.toBe(host);
      expect(batches.map((e) => `${e.type}:${e.id}`)).toEqual(written.map((_, i) => `put:w${i}`));
      expect(resyncs).toEqual([]);
      expect(s.revision).toBe(written[written.length - 1]);
      expect(firstSeen).toBeLessThan(4000);
    } finally {
      await victim.start();
    }
  }, 40_000);
});

/** A loopback relay to etcd that, when armed, lets the first request containing `mark` through to etcd but
 * withholds etcd's answers and then drops the client's connection: etcd applies it, the client never learns. */
async function lossyRelay(target: number, armed: { mark: string | null; dropped: number }): Promise<{ endpoint: string; close(): Promise<void> }> {
  const port = await freePort();
  const socks = new Set<net.Socket>();
  const srv = net.createServer((down) => {
    const up = net.connect(target, '127.0.0.1');
    socks.add(down).add(up);
    let answering = true;
    up.on('data', (chunk: Buffer) => {
      if (answering) down.write(chunk);
    });
    down.on('data', (chunk: Buffer) => {
      up.write(chunk);
      if (armed.mark && chunk.includes(armed.mark)) {
        armed.mark = null;
        armed.dropped++;
        answering = false;
        // Time for the rest of the request (END_STREAM) to reach etcd and be applied.
        setTimeout(() => down.destroy(), 300);
      }
    });
    const drop = () => {
      down.destroy();
      up.destroy();
      socks.delete(down);
      socks.delete(up);
    };
    down.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
  });
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', () => r()));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const so of socks) so.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

describe('EtcdStore when an applied request loses its answer', () => {
  it('does not send a plain put again, but a compare-and-swap is resent and recognised as applied', async () => {
    const armed = { mark: null as string | null, dropped: 0 };
    const relays = await Promise.all([lossyRelay(single.port, armed), lossyRelay(single.port, armed)]);
    try {
      const s = await open(relays.map((r) => r.endpoint));
      const before = await rev();

      armed.mark = 'plain-put-marker';
      const err = await s.put('routes', 'p', { id: 'p', m: 'plain-put-marker' }).then(() => null, (e: unknown) => e);
      expect(armed.dropped).toBe(1);
      expect(isSwitchyardError(err, 'SWY_ERR_STORE_UNAVAILABLE')).toBe(true);
      expect(classifyEtcdError((err as Error).cause)).toBe('transport');
      // Applied exactly once by etcd although the client saw a failure.
      expect(await rev()).toBe(before + 1);
      expect((await s.fetch('routes', 'p'))?.value).toEqual({ id: 'p', m: 'plain-put-marker' });

      const cur = (await s.fetch('routes', 'p'))!;
      armed.mark = 'cas-put-marker';
      const ok = await s.put('routes', 'p', { id: 'p', m: 'cas-put-marker' }, { expectModifiedIndex: cur.modifiedIndex });
      expect(armed.dropped).toBe(2);
      expect(ok.created).toBe(false);
      expect(ok.item.createdIndex).toBe(cur.createdIndex);
      expect(ok.item.modifiedIndex).toBe(before + 2);
      expect(await rev()).toBe(before + 2);

      // A genuine conflict is still one.
      await expect(s.put('routes', 'p', { id: 'p' }, { expectModifiedIndex: cur.modifiedIndex })).rejects.toSatisfy((e) =>
        isSwitchyardError(e, 'SWY_ERR_STORE_CONFLICT'),
      );
    } finally {
      await Promise.all(relays.map((r) => r.close()));
    }
  }, 30_000);

  it('classifies a refused connection as never sent', async () => {
    const port = await freePort();
    const s = new EtcdStore({ hosts: [`http://127.0.0.1:${port}`], prefix: '/x', timeoutSec: 1, logger: silentLogger, startupRetries: 0 });
    stores.push(s);
    const err = await s.start().then(() => null, (e: unknown) => e);
    expect(isSwitchyardError(err, 'SWY_ERR_STORE_UNAVAILABLE')).toBe(true);
    expect(classifyEtcdError((err as Error).cause)).toBe('unsent');
  });
});
