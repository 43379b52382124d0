// Micro benchmark of balancer picks: 10 endpoints (weights 1..10) per type, plus chash with one unhealthy
// node (ring walk), roundrobin over two priority groups, and least_conn/ewma with and without the begin/end
// bookkeeping of each request (`_with_report`). Reports the median ns per pick over several batches. `npx node bench/micro/balancer.ts [--smoke]`.
import { fileURLToPath } from 'node:url';
import type { JsonObject } from '../../src/config/resources.ts';
import { ALL_HEALTHY, BalancerRegistry, type Balancer, type Endpoint, type HealthView, type PickContext } from '../../src/upstream/balancer.ts';
import { createBalancer, setupBalancers } from '../../src/upstream/balancers.ts';
import { MapVars } from '../../src/router/vars.ts';

const NODES = 10;

function endpoints(priorities: boolean): Endpoint[] {
  const out: Endpoint[] = [];
  for (let i = 0; i < NODES; i++) {
    const host = `10.0.0.${i + 1}`;
    out.push({ key: `${host}:8080`, host, port: 8080, weight: i + 1, priority: priorities && i < NODES / 2 ? 1 : 0, domain: host });
  }
  return out;
}

function contexts(n: number): PickContext[] {
  const out: PickContext[] = [];
  for (let i = 0; i < n; i++) out.push({ vars: new MapVars({ remote_addr: `192.0.${i >> 8}.${i & 255}` }), tried: null });
  return out;
}

function measure(b: Balancer, ctxs: PickContext[], batches: number, perBatch: number, report: boolean): number {
  const samples: number[] = [];
  const outcome = { latencyMs: 3, failed: false };
  let sink = 0;
  for (let k = 0; k < batches; k++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < perBatch; i++) {
      const r = b.pick(ctxs[i & 1023]!);
      if (r.ok) {
        sink += r.endpoint.port;
        if (report) {
          b.begin!(r.endpoint);
          b.end!(r.endpoint, outcome);
        }
      }
    }
    samples.push(Number(process.hrtime.bigint() - start) / perBatch);
  }
  if (sink === -1) console.log(sink);
  samples.sort((a, c) => a - c);
  return samples[samples.length >> 1]!;
}

export async function run(opts: { smoke: boolean }): Promise<Record<string, number>> {
  const registry = new BalancerRegistry();
  setupBalancers(registry);
  const ctxs = contexts(1024);
  const conf: JsonObject = { hash_on: 'vars', key: 'remote_addr' };
  const oneDown: HealthView = { isHealthy: (k) => k !== '10.0.0.10:8080' };
  const cases: [string, Balancer, boolean][] = [
    ['roundrobin', createBalancer(registry, 'roundrobin', endpoints(false), conf, ALL_HEALTHY), false],
    ['roundrobin_priority', createBalancer(registry, 'roundrobin', endpoints(true), conf, ALL_HEALTHY), false],
    ['chash', createBalancer(registry, 'chash', endpoints(false), conf, ALL_HEALTHY), false],
    ['chash_one_unhealthy', createBalancer(registry, 'chash', endpoints(false), conf, oneDown), false],
    ['least_conn', createBalancer(registry, 'least_conn', endpoints(false), conf, ALL_HEALTHY), false],
    ['least_conn_with_report', createBalancer(registry, 'least_conn', endpoints(false), conf, ALL_HEALTHY), true],
    ['ewma', createBalancer(registry, 'ewma', endpoints(false), conf, ALL_HEALTHY), false],
    ['ewma_with_report', createBalancer(registry, 'ewma', endpoints(false), conf, ALL_HEALTHY), true],
  ];
  const batches = opts.smoke ? 3 : 9;
  const perBatch = opts.smoke ? 2_000 : 500_000;
  const result: Record<string, number> = {};
  for (const [name, b, report] of cases) result[`${name}_ns`] = Math.round(measure(b, ctxs, batches, perBatch, report));
  return result;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const smoke = process.argv.includes('--smoke');
  console.log(JSON.stringify(await run({ smoke }), null, 2));
}
