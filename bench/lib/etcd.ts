// etcd for the config-store scenarios (the test helper's launcher: random loopback ports, temp data dir),
// wrapped as a Service, plus bulk seeding of resources straight into etcd (128 puts per transaction, etcd's
// default --max-txn-ops) so loading 10,000 routes takes seconds rather than 10,000 Admin API calls.
import { Etcd3 } from 'etcd3';
import { startEtcd, type EtcdPeer } from '../../test/helpers/etcd.ts';
import type { Service } from './service.ts';

export const ETCD_PREFIX = '/swy-bench';

export async function startEtcdService(): Promise<{ etcd: EtcdPeer; svc: Service }> {
  const etcd = await startEtcd();
  let stopped = false;
  const svc: Service = {
    name: 'etcd',
    pid: 0,
    output: () => '',
    alive: () => !stopped,
    stop: async () => {
      stopped = true;
      await etcd.stop();
    },
  };
  return { etcd, svc };
}

/** Writes `<prefix>/<kind>/<id>` = JSON(value) for every item. */
export async function seedEtcd(endpoint: string, prefix: string, items: readonly [kind: string, id: string, value: unknown][]): Promise<void> {
  const client = new Etcd3({ hosts: [endpoint] });
  try {
    for (let i = 0; i < items.length; i += 128) {
      const success = items.slice(i, i + 128).map(([kind, id, value]) => ({
        request_put: { key: Buffer.from(`${prefix}/${kind}/${id}`), value: Buffer.from(JSON.stringify(value)) },
      }));
      await client.kv.txn({ compare: [], success, failure: [] });
    }
  } finally {
    client.close();
  }
}
