#!/usr/bin/env node
// postinstall: fixes a data-loss bug of undici's HTTP/2 client (8.12-8.14): onTrailers removes the stream's
// 'data' listener, so DATA frames still buffered while the stream was paused for backpressure are dropped when
// the trailers arrive (a gRPC server stream read slowly lost ~180 KB of 800 KB and still ended OK). The fix
// deletes that one line; removeRequestStreamListeners detaches the listener when the request completes.
// Idempotent; warns (without failing the install) if undici's code no longer has the expected shape.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const file = path.join(root, 'node_modules/undici/lib/dispatcher/client-h2.js');
if (!existsSync(file)) process.exit(0);
const src = readFileSync(file, 'utf8');
const start = src.indexOf('function onTrailers (trailers) {');
if (start < 0) {
  console.warn('patch-undici: onTrailers not found; undici changed, check the h2 trailers data-loss fix');
  process.exit(0);
}
const end = src.indexOf('\n}\n', start);
const body = src.slice(start, end);
const line = "  stream.off('data', onData)\n";
if (!body.includes(line)) process.exit(0); // already patched
const patched = src.slice(0, start) + body.replace(line, '') + src.slice(end);
writeFileSync(file, patched);
console.log('patch-undici: removed the data listener removal from onTrailers (h2 trailers data-loss fix)');
