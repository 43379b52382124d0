// Micro benchmark of the HTTP route matcher: 10,000 routes (exact, prefix and param URIs; a quarter with
// hosts, some wildcard), then hit-exact / hit-prefix / hit-param / miss lookups. Reports build time (ms), the
// median time of a persistent update() changing two routes (µs), and the median CPU ns per lookup over
// several batches (CPU time rather than wall time: the VM is shared).
// Run: `npx node bench/micro/router.ts [--smoke]`.
import { fileURLToPath } from 'node:url';
import { buildRouter } from '../../src/router/router.ts';
import type { MatchInput, RouteSpec, Router } from '../../src/router/router.ts';
import { MapVars } from '../../src/router/vars.ts';

const ROUTES = 10_000;
const vars = new MapVars({});

function makeSpecs(count: number): RouteSpec<number>[] {
  const specs: RouteSpec<number>[] = [];
  for (let i = 0; specs.length < count; i++) {
    const hosts = i % 4 === 0 ? [i % 8 === 0 ? `*.t${i}.example.com` : `api${i}.example.com`] : undefined;
    const methods = ['GET', 'POST'];
    specs.push({ id: `e${i}`, uris: [`/api/v1/svc${i}/items`], methods, hosts, priority: 0, payload: i });
    specs.push({ id: `p${i}`, uris: [`/api/v1/svc${i}/items/:id`], hosts, priority: 0, payload: i });
    specs.push({ id: `x${i}`, uris: [`/static/svc${i}/*`], hosts, priority: 0, payload: i });
    if (i % 10 === 0) {
      const vars = [['arg_x', '~=', 'y']];
      specs.push({ id: `v${i}`, uris: [`/api/v1/svc${i}/orders/:oid`], vars, priority: 0, payload: i });
    }
  }
  return specs.slice(0, count);
}

function hostFor(i: number): string {
  if (i % 8 === 0) return `a.t${i}.example.com`;
  if (i % 4 === 0) return `api${i}.example.com`;
  return 'plain.example.com';
}

/** `n` requests spread over the first `span` route groups (3.1 routes per group on average). */
function inputs(n: number, span: number, make: (i: number) => [string, string]): MatchInput[] {
  const out: MatchInput[] = [];
  for (let k = 0; k < n; k++) {
    const i = (k * 7919) % span;
    const [host, path] = make(i);
    out.push({ method: 'GET', host, path, remoteAddr: '127.0.0.1', vars, params: null });
  }
  return out;
}

function measure(router: Router<number>, reqs: MatchInput[], batches: number, perBatch: number): number {
  const samples: number[] = [];
  let sink = 0;
  for (let b = 0; b < batches; b++) {
    const start = process.cpuUsage();
    for (let k = 0; k < perBatch; k++) {
      const m = router.match(reqs[k % reqs.length]);
      if (m !== null) sink += m.payload;
    }
    const used = process.cpuUsage(start);
    samples.push(((used.user + used.system) * 1000) / perBatch);
  }
  if (sink === -1) console.log(sink);
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1];
}

export async function run(opts: { smoke: boolean }): Promise<Record<string, number>> {
  const count = opts.smoke ? 1_000 : ROUTES;
  const specs = makeSpecs(count);
  const span = Math.floor(count / 3.1);
  const t0 = process.hrtime.bigint();
  const router = buildRouter(specs);
  const buildMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (router.errors.length > 0) throw new Error(`bench routes rejected: ${router.errors[0].message}`);
  const batches = opts.smoke ? 3 : 7;
  const perBatch = opts.smoke ? 2_000 : 100_000;
  const sets: Record<string, MatchInput[]> = {
    hit_exact: inputs(1024, span, (i) => [hostFor(i), `/api/v1/svc${i}/items`]),
    hit_prefix: inputs(1024, span, (i) => [hostFor(i), `/static/svc${i}/css/site.css`]),
    hit_param: inputs(1024, span, (i) => [hostFor(i), `/api/v1/svc${i}/items/12345`]),
    miss: inputs(1024, span, (i) => [hostFor(i), `/nothing/here/${i}`]),
  };
  const result: Record<string, number> = { build_ms: Math.round(buildMs * 10) / 10, routes: router.size };
  // A config change: one route replaced and one added through the persistent update (median of 200).
  const updates: number[] = [];
  let updated = router;
  for (let k = 0; k < 200; k++) {
    const t = process.hrtime.bigint();
    updated = updated.update({
      upsert: [
        { ...specs[(k * 37) % specs.length]!, uris: [`/moved/${k}`] },
        { id: `new${k}`, uris: [`/new/${k}/:id`], priority: 0, payload: k },
      ],
    });
    updates.push(Number(process.hrtime.bigint() - t) / 1e3);
  }
  updates.sort((a, b) => a - b);
  result.update_us = Math.round(updates[updates.length >> 1]!);
  for (const [name, reqs] of Object.entries(sets)) {
    for (const r of reqs) {
      if ((router.match(r) === null) !== (name === 'miss')) throw new Error(`bench input ${name} ${r.path} misrouted`);
    }
    result[`${name}_ns`] = Math.round(measure(router, reqs, batches, perBatch));
  }
  return result;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await run({ smoke: process.argv.includes('--smoke') });
  for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(14)} ${v}`);
}
