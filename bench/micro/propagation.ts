// Config propagation at scale: a real etcd (spawned on random loopback ports with a temp data dir) holding
// 10,000 routes, the etcd ConfigStore and a RuntimeManager with the real HTTP and stream builders, then
// sequential route PUTs through the store (alternately a new route and an update of an existing one that
// changes its uri). Each sample is the time from the write call to the 'swap' whose router serves the
// written uri. Reports p50/p99/max (ms), the rebuild time of every swap ('swap' event), the etcd put round
// trip alone (put_*: the part no runtime work can remove), the initial load time and RSS once the 10,000
// routes are served.
// Run: `npx node bench/micro/propagation.ts [--smoke]`.
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import type { JsonObject } from '../../src/config/resources.ts';
import { EtcdStore } from '../../src/config/store-etcd.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { setupBuiltinPlugins } from '../../src/plugin/builtin/index.ts';
import { PluginRegistry } from '../../src/plugin/registry.ts';
import { MapVars } from '../../src/router/vars.ts';
import { HttpRuntimeBuilder } from '../../src/runtime/http-runtime.ts';
import { RuntimeManager } from '../../src/runtime/manager.ts';
import type { HttpRuntime } from '../../src/runtime/types.ts';
import { BalancerRegistry } from '../../src/upstream/balancer.ts';
import { setupBalancers } from '../../src/upstream/balancers.ts';
import { StreamRuntimeBuilder } from '../../stream-routes/runtime.ts';
import { startEtcd } from '../../test/helpers/etcd.ts';

const PREFIX = '/apisix';
const SERVICES = 20;
const UPSTREAMS = 50;
const WRITE_TIMEOUT_MS = 10_000;
const vars = new MapVars({});

function upstream(i: number): JsonObject {
  return { type: 'roundrobin', nodes: { [`127.0.0.${1 + (i % 200)}:${1024 + (i % 50_000)}`]: 1 } };
}

/** A mix of exact / param / prefix uris, a quarter with hosts, half with a plugin, three upstream styles. */
function route(i: number, uri?: string): JsonObject {
  const shape = i % 3;
  const r: JsonObject = {
    uri: uri ?? (shape === 0 ? `/api/v1/svc${i}/items` : shape === 1 ? `/api/v1/svc${i}/items/:id` : `/static/svc${i}/*`),
    methods: ['GET', 'POST'],
  };
  if (uri === undefined && i % 4 === 0) r.hosts = [i % 8 === 0 ? `*.t${i}.example.com` : `api${i}.example.com`];
  if (i % 2 === 0) r.plugins = { 'proxy-rewrite': { uri: `/upstream/${i}` } };
  if (i % 10 === 1) r.service_id = `s${i % SERVICES}`;
  else if (i % 3 === 0) r.upstream_id = `u${i % UPSTREAMS}`;
  else r.upstream = upstream(i);
  return r;
}

function routeId(i: number): string {
  return `r${String(i).padStart(6, '0')}`;
}

async function load(endpoint: string, count: number): Promise<void> {
  const client = new Etcd3({ hosts: [endpoint] });
  try {
    const kvs: [string, JsonObject][] = [];
    for (let i = 0; i < SERVICES; i++) kvs.push([`services/s${i}`, { upstream: upstream(100_000 + i) }]);
    for (let i = 0; i < UPSTREAMS; i++) kvs.push([`upstreams/u${i}`, upstream(200_000 + i)]);
    for (let i = 0; i < count; i++) kvs.push([`routes/${routeId(i)}`, route(i)]);
    // etcd's default --max-txn-ops is 128.
    for (let at = 0; at < kvs.length; at += 100) {
      const batch = kvs.slice(at, at + 100);
      await client.kv.txn({
        compare: [],
        success: batch.map(([k, v]) => ({ request_put: { key: Buffer.from(`${PREFIX}/${k}`), value: Buffer.from(JSON.stringify(v)) } })),
        failure: [],
      });
    }
  } finally {
    client.close();
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

export async function run(opts: { smoke: boolean; writes?: number; progress?: boolean }): Promise<Record<string, number>> {
  const routes = opts.smoke ? 1_000 : 10_000;
  const writes = opts.writes ?? (opts.smoke ? 50 : 1_000);
  const progress = opts.progress === true;
  const etcd = await startEtcd();
  const store = new EtcdStore({ hosts: [etcd.endpoint], prefix: PREFIX, timeoutSec: 5, logger: silentLogger });
  const plugins = new PluginRegistry();
  setupBuiltinPlugins(plugins);
  const balancers = new BalancerRegistry();
  setupBalancers(balancers);
  const http = new HttpRuntimeBuilder({ plugins, balancers, attrs: {}, logger: silentLogger });
  const stream = new StreamRuntimeBuilder({ plugins, balancers, logger: silentLogger });
  const manager = new RuntimeManager(store, plugins, silentLogger);
  const getHttp = manager.add<HttpRuntime>(http);
  manager.add(stream);
  try {
    await load(etcd.endpoint, routes);
    const t0 = performance.now();
    await store.start();
    manager.start();
    const loadMs = performance.now() - t0;
    const rt = getHttp();
    if (rt === null || rt.router.size !== routes) throw new Error(`expected ${routes} routes, got ${rt?.router.size}`);
    (globalThis as { gc?: () => void }).gc?.();
    const rssMb = process.memoryUsage().rss / 2 ** 20;

    const samples: number[] = [];
    const putMs: number[] = [];
    const buildMs: number[] = [];
    manager.on('swap', (_rev: number, ms: number) => buildMs.push(ms));
    for (let k = 0; k < writes; k++) {
      const uri = `/bench/w${k}`;
      const input = { method: 'GET', host: 'x.example.com', path: uri, remoteAddr: '127.0.0.1', vars, params: null };
      // Even k: a new route; odd k: an existing route moved to a new uri.
      const i = k % 2 === 0 ? routes + k : (k * 7919) % routes;
      const served = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`write ${k} not served within ${WRITE_TIMEOUT_MS} ms`)), WRITE_TIMEOUT_MS);
        const onSwap = (): void => {
          if (getHttp()?.router.match(input) == null) return;
          clearTimeout(timer);
          manager.off('swap', onSwap);
          resolve(performance.now());
        };
        manager.on('swap', onSwap);
      });
      const start = performance.now();
      await store.put('routes', routeId(i), route(i, uri));
      putMs.push(performance.now() - start);
      samples.push((await served) - start);
      if (progress && (k + 1) % 100 === 0) process.stderr.write(`${k + 1} writes, last ${samples[k]!.toFixed(1)} ms\n`);
    }
    samples.sort((a, b) => a - b);
    buildMs.sort((a, b) => a - b);
    putMs.sort((a, b) => a - b);
    return {
      routes,
      writes,
      load_ms: Math.round(loadMs),
      rss_mb: Math.round(rssMb),
      p50_ms: round(percentile(samples, 50)),
      p99_ms: round(percentile(samples, 99)),
      max_ms: round(samples[samples.length - 1]!),
      rebuild_p50_ms: round(percentile(buildMs, 50)),
      rebuild_p99_ms: round(percentile(buildMs, 99)),
      put_p50_ms: round(percentile(putMs, 50)),
      put_p99_ms: round(percentile(putMs, 99)),
    };
  } finally {
    manager.stop();
    await store.close();
    await http.close();
    stream.close();
    await etcd.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const w = process.argv.indexOf('--writes');
  const writes = w > 0 ? Number(process.argv[w + 1]) : undefined;
  const result = await run({ smoke: process.argv.includes('--smoke'), writes, progress: true });
  for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(16)} ${v}`);
  process.exit(0);
}
