// gRPC-Web from a real browser: a page using @connectrpc/connect-web (bundled with esbuild) runs in headless
// Chromium (Debian's, driven by playwright-core) and calls the gateway cross-origin, so the CORS preflight and
// the exposed grpc-status/grpc-message headers are exercised as a browser enforces them. The results are
// read back from the page.
//
// Needs /usr/bin/chromium and the packages @connectrpc/connect, @connectrpc/connect-web, @bufbuild/protobuf,
// esbuild and playwright-core, from node_modules or the directory named by SWY_GRPC_WEB_CLIENTS; fails
// without them.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { ECHO_PROTO, startGrpcUpstream, type GrpcUpstream } from '../helpers/grpc.ts';
import { tempDir } from '../helpers/proc.ts';

const run = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';

function findTools(): { nodeModules: string; esbuild: any; playwright: any } | null {
  if (!existsSync(CHROMIUM)) return null;
  const dirs = [path.join(import.meta.dirname, '../../node_modules')];
  if (process.env.SWY_GRPC_WEB_CLIENTS) dirs.push(process.env.SWY_GRPC_WEB_CLIENTS);
  for (const dir of dirs) {
    const req = createRequire(path.join(dir, '..', 'package.json'));
    try {
      for (const p of ['@connectrpc/connect', '@connectrpc/connect-web', '@bufbuild/protobuf']) req.resolve(p);
      return { nodeModules: dir, esbuild: req('esbuild'), playwright: req('playwright-core') };
    } catch {
      /* next */
    }
  }
  return null;
}

const tools = findTools();

// The page's script: builds the service from an embedded FileDescriptorSet and runs the calls.
const ENTRY = `
import { createClient, ConnectError } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-web';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';

const Echo = createFileRegistry(fromBinary(FileDescriptorSetSchema, Uint8Array.from(atob(DESCRIPTORS), (c) => c.charCodeAt(0)))).getService('swytest.Echo');

async function capture(fn) {
  try {
    return { ok: await fn() };
  } catch (e) {
    const err = ConnectError.from(e);
    return { code: err.code, message: err.rawMessage };
  }
}

window.runCalls = async (gateway) => {
  const client = createClient(Echo, createGrpcWebTransport({ baseUrl: gateway + '/grpc/web' }));
  const unary = await capture(async () => {
    let trailer = null;
    const r = await client.unary({ text: 'from the browser' }, { onTrailer: (t) => (trailer = t.get('x-trailer')) });
    return { text: r.text, trailer };
  });
  const stream = await capture(async () => {
    const out = [];
    for await (const m of client.serverStream({ text: 'b', count: 3, intervalMs: 20 })) out.push(m.text);
    return out;
  });
  const failed = await capture(() => client.unary({ text: 'x', failCode: 7, failMessage: 'not for you' }));
  const down = await capture(() => createClient(Echo, createGrpcWebTransport({ baseUrl: gateway + '/down' })).unary({ text: 'x' }));
  return { unary, stream, failed, down };
};
`;

let gw: TestGateway;
let up: GrpcUpstream;
let page: http.Server;
let cleanup: (() => Promise<void>) | null = null;

beforeAll(async () => {
  if (tools === null) return;
  const t = await tempDir('swy-browser-');
  cleanup = t.cleanup;
  const pb = path.join(t.dir, 'echo.pb');
  await run('protoc', ['-I', path.dirname(ECHO_PROTO), '--include_imports', `--descriptor_set_out=${pb}`, path.basename(ECHO_PROTO)]);
  const entry = path.join(t.dir, 'entry.js');
  await writeFile(entry, ENTRY);
  const built = await tools.esbuild.build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    nodePaths: [tools.nodeModules],
    define: { DESCRIPTORS: JSON.stringify((await readFile(pb)).toString('base64')) },
    logLevel: 'silent',
  });
  const script = built.outputFiles[0].text as string;
  const html = `<!doctype html><html><head><meta charset="utf-8"><script>${script}</script></head><body>gRPC-Web test page</body></html>`;
  // The page comes from another origin than the gateway: every call is cross-origin.
  page = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise<void>((r) => page.listen(0, '127.0.0.1', r));
  up = await startGrpcUpstream();
  gw = await startTestGateway();
  await gw.put('/routes/web', { uri: '/grpc/web/*', upstream: { scheme: 'grpc', nodes: { [up.addr]: 1 } }, plugins: { 'grpc-web': {} } });
  await gw.put('/routes/down', { uri: '/down/*', upstream: { scheme: 'grpc', nodes: { '127.0.0.1:1': 1 } }, plugins: { 'grpc-web': {} } });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await up?.close();
  await new Promise((r) => (page ? page.close(r) : r(undefined)));
  await cleanup?.();
});

describe('gRPC-Web from headless Chromium (connect-web)', () => {
  // Dev dependencies (and Chromium, installed by npm test): a missing one is a broken install, not a skip.
  test('has its client libraries (esbuild + playwright-core + Chromium)', () => {
    expect(tools).not.toBeNull();
  });

  test('unary with trailers, server streaming, an upstream error and a gateway error, cross-origin', async () => {
    // playwright-core makes (and removes) a temporary profile itself.
    const browser = await tools!.playwright.chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const tab = await browser.newPage();
      await tab.goto(`http://127.0.0.1:${(page.address() as AddressInfo).port}/`);
      const results = await tab.evaluate(async (gateway: string) => (globalThis as any).runCalls(gateway), gw.url);
      expect(results.unary).toEqual({ ok: { text: 'from the browser', trailer: 'unary' } });
      expect(results.stream).toEqual({ ok: ['b-0', 'b-1', 'b-2'] });
      // PERMISSION_DENIED from the upstream, read from the trailers-only head (grpc-status is exposed).
      expect(results.failed).toEqual({ code: 7, message: 'not for you' });
      // The gateway's own failure (upstream refused) is UNAVAILABLE.
      expect(results.down.code).toBe(14);
    } finally {
      await browser.close();
    }
  });
});
