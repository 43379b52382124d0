// Micro benchmark of buildSnapshot: 10,000 routes built from scratch, then rebuilt after one route changed
// (the common Admin API write). Run: npx node bench/micro/snapshot.ts
import { buildSnapshot } from '../../src/config/snapshot.ts';
import type { JsonObject, StoredItem } from '../../src/config/resources.ts';
import type { PluginSchemaSource } from '../../src/schema/validator.ts';

const N = 10_000;
const proxyRewrite = {
  schema: { type: 'object', properties: { uri: { type: 'string' }, host: { type: 'string' } } },
};
const plugins: PluginSchemaSource = { get: (name) => (name === 'proxy-rewrite' ? proxyRewrite : undefined) };

function route(i: number, rev: number): StoredItem {
  const id = String(i).padStart(20, '0');
  const value: JsonObject = {
    id,
    uri: `/svc/${i}/*`,
    methods: ['GET', 'POST'],
    hosts: [`h${i % 50}.example.com`],
    plugins: { 'proxy-rewrite': { uri: `/v${i}` } },
    upstream: { type: 'roundrobin', nodes: { [`10.0.${(i >> 8) & 255}.${i & 255}:8080`]: 1 } },
  };
  return { kind: 'routes', id, key: `/apisix/routes/${id}`, value, createdIndex: rev, modifiedIndex: rev };
}

const items: StoredItem[] = [];
for (let i = 0; i < N; i++) items.push(route(i, i + 1));

let t = performance.now();
const first = buildSnapshot(items, N, { plugins });
const full = performance.now() - t;

// Five successive single-route changes, each rebuilt from the previous snapshot.
const rebuilds: number[] = [];
let prev = first;
for (let k = 0; k < 5; k++) {
  const i = (k * 1999) % N;
  items[i] = route(i, N + 1 + k);
  t = performance.now();
  prev = buildSnapshot(items, N + 1 + k, { plugins, previous: prev });
  rebuilds.push(performance.now() - t);
}
const sorted = [...rebuilds].sort((a, b) => a - b);

console.log(`routes=${first.size('routes')} errors=${first.errors.length}`);
console.log(`full build: ${full.toFixed(1)} ms`);
console.log(
  `rebuild after one change: first ${rebuilds[0]!.toFixed(1)} ms, median ${sorted[2]!.toFixed(1)} ms, ` +
    `min ${sorted[0]!.toFixed(1)} ms (routes=${prev.size('routes')}, errors=${prev.errors.length})`,
);
