import { buildSnapshot } from './src/config/snapshot.ts';
import type { JsonObject, StoredItem } from './src/config/resources.ts';
const proxyRewrite = { schema: { type: 'object', properties: { uri: { type: 'string' }, host: { type: 'string' } } } };
const plugins = { get: (name: string) => (name === 'proxy-rewrite' ? proxyRewrite : undefined) };
function route(i: number, rev: number): StoredItem {
  const id = String(i).padStart(20, '0');
  const value: JsonObject = { id, uri: `/svc/${i}/*`, methods: ['GET', 'POST'], hosts: [`h${i % 50}.example.com`], plugins: { 'proxy-rewrite': { uri: `/v${i}` } }, upstream: { type: 'roundrobin', nodes: { [`10.0.${(i >> 8) & 255}.${i & 255}:8080`]: 1 } } };
  return { kind: 'routes', id, key: `/apisix/routes/${id}`, value, createdIndex: rev, modifiedIndex: rev };
}
for (let r = 0; r < 3; r++) {
const items: StoredItem[] = []; for (let i = 0; i < 10000; i++) items.push(route(i, i + 1));
let t = performance.now(); const first = buildSnapshot(items, 1, { plugins }); console.log('full', (performance.now() - t).toFixed(1));
for (let k = 0; k < 3; k++) { items[k * 7] = route(k * 7, 99); t = performance.now(); buildSnapshot(items, 2, { plugins, previous: first }); console.log('incr', (performance.now() - t).toFixed(1)); }
}
