// An etcd-backed gateway against a real etcd: Admin API writes and foreign (etcdctl) writes reach the data plane,
// etcd killed and restarted, a connection cut while objects change and history is compacted: nothing is lost.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdPeer } from '../helpers/etcd.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { NO_EXPORTER, get, served } from './cli-helpers.ts';

/** A TCP relay in front of etcd that the test can cut (every connection reset, new ones refused) and restore. */
interface Relay {
  readonly endpoint: string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

async function startRelay(target: number): Promise<Relay> {
  const socks = new Set<net.Socket>();
  let server: net.Server | null = null;
  let port = 0;
  const open = () =>
    new Promise<void>((resolve, reject) => {
      const s = net.createServer((down) => {
        const up = net.connect(target, '127.0.0.1');
        socks.add(down);
        socks.add(up);
        const drop = () => {
          down.destroy();
          up.destroy();
          socks.delete(down);
          socks.delete(up);
        };
        down.on('error', drop).on('close', drop);
        up.on('error', drop).on('close', drop);
        down.pipe(up);
        up.pipe(down);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as net.AddressInfo).port;
        server = s;
        resolve();
      });
    });
  const shut = () =>
    new Promise<void>((resolve) => {
      for (const s of socks) s.resetAndDestroy();
      socks.clear();
      if (!server) return resolve();
      server.close(() => resolve());
      server = null;
    });
  await open();
  return { endpoint: `http://127.0.0.1:${port}`, cut: shut, restore: open, close: shut };
}

let etcd: EtcdPeer;
let echo: EchoServer;
let relay: Relay;
let gw: TestGateway;
let prefix: string;

beforeAll(async () => {
  etcd = await startEtcd();
  echo = await startEcho('etcd-up');
  relay = await startRelay(etcd.port);
  gw = await startTestGateway({ etcd: { endpoint: relay.endpoint }, config: NO_EXPORTER });
  prefix = gw.config.deployment.etcd.prefix;
});

afterAll(async () => {
  await gw?.close();
  await relay?.close();
  await echo?.close();
  await etcd?.stop();
});

function routeBody(name: string): Record<string, unknown> {
  return { uri: `/${name}`, upstream: { type: 'roundrobin', nodes: { [echo.addr]: 1 } } };
}

const url = (name: string) => `${gw.url}/${name}`;

async function revision(): Promise<number> {
  const out = JSON.parse(await etcd.etcdctl('endpoint', 'status', '-w', 'json')) as { Status: { header: { revision: number } } }[];
  return out[0]!.Status.header.revision;
}

/** Admin API PUT, retried while the store reconnects (5xx). */
async function adminPut(path: string, body: unknown): Promise<void> {
  await waitFor(async () => {
    const r = await gw.admin('PUT', path, body);
    if (r.status >= 500) return false;
    expect(r.status, JSON.stringify(r.body)).toBeLessThan(300);
    return true;
  }, 15_000, 100);
}

describe('etcd-backed gateway', () => {
  it('serves an Admin API write (watch propagation into the snapshot) and stops serving on delete', async () => {
    const r = await gw.admin('PUT', '/routes/a1', routeBody('a1'));
    expect(r.status).toBe(201);
    await served(url('a1'));
    expect(JSON.parse((await get(url('a1'))).body).server).toBe('etcd-up');
    expect((await gw.admin('DELETE', '/routes/a1')).status).toBe(200);
    await served(url('a1'), 404);
  });

  it('serves objects written by another etcd client in APISIX format (interop)', async () => {
    await etcd.etcdctl('put', `${prefix}/upstreams/ext-up`, JSON.stringify({ id: 'ext-up', type: 'roundrobin', nodes: [{ host: '127.0.0.1', port: echo.port, weight: 1 }] }));
    await etcd.etcdctl('put', `${prefix}/routes/ext`, JSON.stringify({ id: 'ext', uri: '/ext', upstream_id: 'ext-up' }));
    await served(url('ext'));
    const listed = await gw.admin('GET', '/routes/ext');
    expect(listed.status).toBe(200);
    expect(listed.body.value.upstream_id).toBe('ext-up');
    // A value that is not JSON is skipped; the rest keeps serving.
    await etcd.etcdctl('put', `${prefix}/routes/garbage`, '{not json');
    await etcd.etcdctl('put', `${prefix}/routes/after-garbage`, JSON.stringify(routeBody('after-garbage')));
    await served(url('after-garbage'));
    expect((await get(url('ext'))).status).toBe(200);
    await etcd.etcdctl('del', `${prefix}/routes/garbage`);
  });

  it('keeps serving while etcd is down; after a restart, later writes propagate and nothing is lost', async () => {
    for (const n of ['k1', 'k2', 'k3']) await gw.put(`/routes/${n}`, routeBody(n));
    await etcd.kill();
    for (let i = 0; i < 10; i++) {
      for (const n of ['k1', 'k2', 'k3', 'ext']) expect((await get(url(n))).status).toBe(200);
    }
    const down = await gw.admin('PUT', '/routes/while-down', routeBody('while-down'));
    expect(down.status).toBeGreaterThanOrEqual(500);
    await etcd.restart();
    await adminPut('/routes/k4', routeBody('k4'));
    await served(url('k4'), 200, 15_000);
    for (const n of ['k1', 'k2', 'k3', 'ext', 'after-garbage']) expect((await get(url(n))).status).toBe(200);
    const list = await gw.admin('GET', '/routes');
    const ids = (list.body.list as { key: string }[]).map((x) => x.key.slice(x.key.lastIndexOf('/') + 1)).sort();
    expect(ids).toEqual(['after-garbage', 'ext', 'k1', 'k2', 'k3', 'k4']);
  });

  it('survives `etcdctl compact` under a live watch', async () => {
    for (const n of ['c1', 'c2']) await etcd.etcdctl('put', `${prefix}/routes/${n}`, JSON.stringify(routeBody(n)));
    await etcd.etcdctl('compact', String(await revision()));
    for (const n of ['c3', 'c4']) await etcd.etcdctl('put', `${prefix}/routes/${n}`, JSON.stringify(routeBody(n)));
    await served(url('c4'));
    for (const n of ['c1', 'c2', 'c3', 'k1', 'ext']) expect((await get(url(n))).status).toBe(200);
  });

  it('resyncs after a cut connection during which objects changed and history was compacted', async () => {
    await relay.cut();
    await etcd.etcdctl('del', `${prefix}/routes/c1`);
    await etcd.etcdctl('put', `${prefix}/routes/c2`, JSON.stringify({ ...routeBody('c2'), uri: '/c2-moved' }));
    for (const n of ['d1', 'd2']) await etcd.etcdctl('put', `${prefix}/routes/${n}`, JSON.stringify(routeBody(n)));
    await etcd.etcdctl('compact', String(await revision()));
    // The data plane keeps the last good snapshot meanwhile.
    expect((await get(url('c1'))).status).toBe(200);
    await relay.restore();
    await served(url('d2'), 200, 20_000);
    await served(url('c1'), 404);
    expect((await get(url('c2'))).status).toBe(404);
    expect((await get(url('c2-moved'))).status).toBe(200);
    for (const n of ['d1', 'c3', 'c4', 'k1', 'k4', 'ext']) expect((await get(url(n))).status).toBe(200);
    await adminPut('/routes/after-cut', routeBody('after-cut'));
    await served(url('after-cut'));
  });
});
