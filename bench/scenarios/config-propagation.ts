// Admin API write -> data plane serves it, with 10,000 routes loaded and etcd as the config store:
// 1. p50/p99 of the time from sending a route PUT until the new URI answers 200 (the PUT's own response
//    time is reported too);
// 2. 1,000 successive changes of one route (its upstream and plugins alternate) while client loops keep
//    requesting that route and the 10,000 static ones: every response must be a 200.
import path from 'node:path';
import { ETCD_PREFIX, seedEtcd, startEtcdService } from '../lib/etcd.ts';
import { startGateway } from '../lib/gateway.ts';
import { Client } from '../lib/http-client.ts';
import { startUpstream } from '../lib/http-setup.ts';
import { fmt, fmtInt, median, percentile, round } from '../lib/stats.ts';
import type { Scenario } from '../lib/types.ts';

const ROUTES = 10_000;
const SAMPLES = 200;
const CHANGES = 1_000;
const CLIENT_LOOPS = 4;
const WAIT_MS = 10_000;
/** The change loop stops at this many seconds even if fewer than CHANGES were made (reported). */
const CHURN_CAP_SEC = 60;

export const configPropagation: Scenario = {
  name: 'config-propagation',
  title: 'Config propagation: Admin API write until the data plane serves it (etcd, 10,000 routes)',
  budgetSec: 150,
  skipReason: async () => null,
  run: async (ctx) => {
    const n = ctx.smoke ? 1_000 : ROUTES;
    const samples = ctx.smoke ? 5 : SAMPLES;
    const changes = ctx.smoke ? 20 : CHANGES;
    const { etcd, svc: etcdSvc } = await startEtcdService();
    ctx.services.push(etcdSvc);
    const up = await startUpstream(ctx);
    const upstream = { id: '1', type: 'roundrobin', nodes: { [`127.0.0.1:${up.port}`]: 1 } };
    const items: [string, string, unknown][] = [['upstreams', '1', upstream]];
    for (let i = 0; i < n; i++) items.push(['routes', `r${i}`, { id: `r${i}`, uri: `/r/${i}`, upstream_id: '1' }]);
    await seedEtcd(etcd.endpoint, ETCD_PREFIX, items);
    const gw = await startGateway({ dir: path.join(ctx.tmp, 'gateway'), etcd: { endpoint: etcd.endpoint, prefix: ETCD_PREFIX } });
    ctx.services.push(gw);
    const client = new Client(gw.port, 2);
    try {
      await client.waitStatus(`/r/${n - 1}`, 200, 30_000);
      ctx.log(`  ${fmtInt(n)} routes loaded from etcd`);

      const total: number[] = [];
      const write: number[] = [];
      for (let k = 0; k < samples; k++) {
        const t0 = performance.now();
        const r = await gw.admin('PUT', `/routes/p${k}`, { uri: `/p/${k}`, upstream_id: '1' });
        const t1 = performance.now();
        if (r.status >= 300) throw new Error(`PUT /routes/p${k} -> ${r.status} ${JSON.stringify(r.body)}`);
        await client.waitStatus(`/p/${k}`, 200, WAIT_MS);
        total.push(performance.now() - t0);
        write.push(t1 - t0);
      }
      ctx.log(`  propagation p50 ${fmt(median(total))} ms p99 ${fmt(percentile(total, 99))} ms over ${samples} writes`);

      const churn = await churnUnderLoad(gw, gw.port, n, changes, up.port, ctx.smoke ? 10 : CHURN_CAP_SEC);
      const propagation = {
        samples,
        total_p50_ms: round(median(total), 2),
        total_p99_ms: round(percentile(total, 99), 2),
        total_max_ms: round(Math.max(...total), 2),
        admin_put_p50_ms: round(median(write), 2),
        admin_put_p99_ms: round(percentile(write, 99), 2),
      };
      return {
        summary: { routes: n, propagation, churn },
        tables: [
          {
            title: `Route PUT until served, ${fmtInt(n)} routes loaded, etcd backend (${samples} writes)`,
            columns: ['measure', 'p50 ms', 'p99 ms', 'max ms'],
            rows: [
              ['PUT sent -> new URI answers 200', fmt(median(total)), fmt(percentile(total, 99)), fmt(Math.max(...total))],
              ['Admin API PUT response time', fmt(median(write)), fmt(percentile(write, 99)), fmt(Math.max(...write))],
            ],
          },
          {
            title: `Client loops during ${fmtInt(churn.changes)} changes of one route${churn.changes < changes ? ` (capped at ${CHURN_CAP_SEC} s)` : ''}`,
            columns: ['changes', 'seconds', 'requests', 'non-200', 'network errors'],
            rows: [[fmtInt(churn.changes), fmt(churn.seconds, 1), fmtInt(churn.requests), String(churn.non200), String(churn.networkErrors)]],
          },
        ],
        notes: [
          'Propagation is measured from just before the PUT is sent until the first 200 on the new URI, polling the data plane back to back on keep-alive connections; the poll adds well under a millisecond.',
          `${CLIENT_LOOPS} client loops alternate between the changing route and the ${fmtInt(n)} static routes; the changing route alternates between upstream_id and an inline upstream with proxy-rewrite.`,
        ],
      };
    } finally {
      await client.close();
    }
  },
};

interface ChurnResult {
  changes: number;
  seconds: number;
  requests: number;
  non200: number;
  networkErrors: number;
}

async function churnUnderLoad(
  gw: { admin(m: string, p: string, b?: unknown): Promise<{ status: number; body: unknown }> },
  port: number,
  routes: number,
  changes: number,
  upstreamPort: number,
  capSec: number,
): Promise<ChurnResult> {
  const put = async (body: unknown) => {
    const r = await gw.admin('PUT', '/routes/churn', body);
    if (r.status >= 300) throw new Error(`PUT /routes/churn -> ${r.status} ${JSON.stringify(r.body)}`);
  };
  const plain = { uri: '/churn', upstream_id: '1' };
  const inline = {
    uri: '/churn',
    upstream: { type: 'roundrobin', nodes: [{ host: '127.0.0.1', port: upstreamPort, weight: 1 }] },
    plugins: { 'proxy-rewrite': { uri: '/churned' } },
  };
  await put(plain);
  const client = new Client(port, CLIENT_LOOPS);
  await client.waitStatus('/churn', 200, WAIT_MS);
  let running = true;
  let requests = 0;
  let non200 = 0;
  let networkErrors = 0;
  const loop = async (seed: number) => {
    for (let i = seed; running; i++) {
      const s = await client.status(i % 2 === 0 ? '/churn' : `/r/${(i * 7919) % routes}`);
      requests++;
      if (s === -1) networkErrors++;
      else if (s !== 200) non200++;
    }
  };
  const start = performance.now();
  const deadline = start + capSec * 1000;
  const loops: Promise<void>[] = [];
  for (let l = 0; l < CLIENT_LOOPS; l++) loops.push(loop(l));
  let made = 0;
  try {
    for (; made < changes && performance.now() < deadline; made++) await put(made % 2 === 0 ? inline : plain);
    // Let the last change reach the data plane while the loops still run.
    await new Promise((r) => setTimeout(r, 200));
  } finally {
    running = false;
    await Promise.all(loops);
    await client.close();
  }
  return { changes: made, seconds: (performance.now() - start) / 1000, requests, non200, networkErrors };
}
