// PUT /apisix/admin/plugins/reload as APISIX (admin/init.lua, t/admin/plugins-reload.t), on real CLIs with two
// workers each sharing one real etcd: node A (traditional, Admin API) re-reads its config.yaml and applies the
// plugin lists in its primary and in every worker, then writes them to `<prefix>/plugins`; node B (data_plane,
// no Admin API, its own config.yaml untouched) follows that key in every process. Each worker is driven alone
// (the others SIGSTOPped) so a worker that missed the reload cannot hide behind one that did not.
import { writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, baseConfig, get, killAll, ports, startCli, writeConfig, type Gw, type Ports } from '../foundation/cli-helpers.ts';
import { startEtcd, type EtcdPeer } from '../helpers/etcd.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { only, workerPids, type Node } from '../plugin/counters/workers.ts';

const PREFIX = '/swy-reload';
const BOTH = ['uri-blocker', 'response-rewrite'];

let etcd: EtcdPeer;
let echo: EchoServer;
let tmpA: { dir: string; cleanup(): Promise<void> };
let tmpB: { dir: string; cleanup(): Promise<void> };
let a: Node;
let b: Node;
let fileA: string;
let confA: Record<string, any>;

function etcdConfig(p: Ports): Record<string, any> {
  const conf = baseConfig(p, 'etcd');
  conf.deployment.etcd = { host: [etcd.endpoint], prefix: PREFIX, timeout: 5 };
  conf.switchyard.worker_processes = 2;
  conf.plugins = BOTH;
  conf.stream_plugins = ['ip-restriction'];
  return conf;
}

async function startNode(p: Ports, file: string): Promise<Gw> {
  const gw = await startCli(file, p.status);
  await waitFor(async () => (await get(`http://127.0.0.1:${p.status}/status/ready`)).status === 200, 40_000, 50);
  return gw;
}

beforeAll(async () => {
  [etcd, echo, tmpA, tmpB] = await Promise.all([startEtcd(), startEcho('reload'), tempDir('swy-reload-a-'), tempDir('swy-reload-b-')]);
  const pa = await ports();
  confA = etcdConfig(pa);
  fileA = await writeConfig(tmpA.dir, confA);
  a = { gw: await startNode(pa, fileA), p: pa, cleanup: async () => undefined };

  const pb = await ports();
  const confB = etcdConfig(pb);
  confB.deployment = { role: 'data_plane', role_data_plane: { config_provider: 'etcd' }, etcd: confB.deployment.etcd };
  b = { gw: await startNode(pb, await writeConfig(tmpB.dir, confB)), p: pb, cleanup: async () => undefined };
}, 120_000);

afterAll(async () => {
  await Promise.all([a?.gw.peer.stop(), b?.gw.peer.stop()]);
  await killAll();
  await Promise.all([etcd?.stop(), echo?.close(), tmpA?.cleanup(), tmpB?.cleanup()]);
});

/** /blk/secret as answered by each worker of `n` alone: status and the response-rewrite header. */
async function perWorker(n: Node, want: { status: number; tag: string | undefined }): Promise<{ status: number; tag: string | undefined }[]> {
  const pids = await workerPids(n);
  expect(pids).toHaveLength(2);
  const out = [];
  for (const pid of pids) {
    out.push(
      await only(n, pid, async () => {
        const call = async () => {
          const r = await get(`http://127.0.0.1:${n.p.http}/blk/secret`);
          return { status: r.status, tag: r.headers['x-tag'] as string | undefined };
        };
        // Bounded wait for this worker to converge; the last answer is what the caller asserts.
        await waitFor(async () => {
          const r = await call();
          return r.status === want.status && r.tag === want.tag;
        }, 15_000, 50).catch(() => undefined);
        return await call();
      }),
    );
  }
  return out;
}

async function storedList(): Promise<unknown> {
  const raw = (await etcd.etcdctl('get', `${PREFIX}/plugins`, '--print-value-only')).trim();
  return raw === '' ? null : JSON.parse(raw);
}

describe('PUT /apisix/admin/plugins/reload', () => {
  it('answers 405 to other methods', async () => {
    expect(await admin(a.p, 'GET', '/plugins/reload')).toEqual({
      status: 405,
      body: { error_msg: 'please use PUT method to reload the plugins, GET method is not allowed.' },
    });
  });

  it('re-reads config.yaml: every worker of the node, and every worker of a data plane through etcd, stops running a removed plugin', async () => {
    const route = {
      uri: '/blk/*',
      plugins: { 'uri-blocker': { block_rules: ['secret'] }, 'response-rewrite': { headers: { set: { 'x-tag': 'rw' } } } },
      upstream: { type: 'roundrobin', nodes: { [echo.addr]: 1 } },
    };
    expect((await admin(a.p, 'PUT', '/routes/blk', route)).status).toBeLessThan(300);
    // uri-blocker answers before response-rewrite's header phase would run on an upstream answer; its 403 carries
    // the header too (response-rewrite rewrites local answers), so both plugins are seen running.
    const blocked = { status: 403, tag: 'rw' };
    expect(await perWorker(a, blocked)).toEqual([blocked, blocked]);
    expect(await perWorker(b, blocked)).toEqual([blocked, blocked]);
    // Nothing was reloaded yet: node A does not create the key by starting (APISIX resets only a stored list).
    expect(await storedList()).toBeNull();

    await writeFile(fileA, stringify({ ...confA, plugins: ['response-rewrite'] }));
    const r = await admin(a.p, 'PUT', '/plugins/reload');
    expect(r).toEqual({ status: 200, body: 'done' });

    // The primary (the Admin API's registry) has applied it when the answer arrives.
    expect((await admin(a.p, 'GET', '/plugins/list')).body).toEqual(['response-rewrite']);
    expect(await storedList()).toEqual([{ name: 'response-rewrite' }, { name: 'ip-restriction', stream: true }]);
    const served = { status: 200, tag: 'rw' };
    expect(await perWorker(a, served)).toEqual([served, served]);
    expect(await perWorker(b, served)).toEqual([served, served]);
  });

  it('answers an error and changes nothing when config.yaml is invalid', async () => {
    await writeFile(fileA, stringify({ ...confA, plugins: 'not-a-list' }));
    const r = await admin(a.p, 'PUT', '/plugins/reload');
    expect(r.status).toBe(500);
    expect(r.body.error_msg).toMatch(/^failed to reload plugins: invalid configuration in .*config\.yaml: .*plugins/);
    expect((await admin(a.p, 'GET', '/plugins/list')).body).toEqual(['response-rewrite']);

    // Back to both plugins: the data plane follows again, as do node A's workers.
    await writeFile(fileA, stringify(confA));
    expect(await admin(a.p, 'PUT', '/plugins/reload')).toEqual({ status: 200, body: 'done' });
    const blocked = { status: 403, tag: 'rw' };
    expect(await perWorker(a, blocked)).toEqual([blocked, blocked]);
    expect(await perWorker(b, blocked)).toEqual([blocked, blocked]);
  });

  it('data planes follow the etcd key whoever writes it, keep their plugins on an invalid value; admin nodes ignore it', async () => {
    const blocked = { status: 403, tag: 'rw' };
    await etcd.etcdctl('put', `${PREFIX}/plugins`, '[{"name": 1}]');
    await waitFor(() => b.gw.peer.output().includes('etcd plugin list is invalid'), 15_000, 50);
    expect(await perWorker(b, blocked)).toEqual([blocked, blocked]);

    await etcd.etcdctl('put', `${PREFIX}/plugins`, JSON.stringify([{ name: 'response-rewrite' }]));
    const served = { status: 200, tag: 'rw' };
    expect(await perWorker(b, served)).toEqual([served, served]);
    expect(await perWorker(a, blocked)).toEqual([blocked, blocked]);
  });
});
