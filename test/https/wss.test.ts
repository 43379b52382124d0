// wss:// through the HTTPS listener to a `ws` upstream on a route with key-auth and proxy-rewrite
// (enable_websocket): the plugins apply to the upgrade (the upstream sees the rewritten path and header), and
// a request without a valid key gets 401 before any upstream connection (TCP accepts counted on the upstream).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { tempDir } from '../helpers/proc.ts';
import { makePki, type Pki } from './pki.ts';

let tmp: { dir: string; cleanup(): Promise<void> };
let pki: Pki;
let gw: TestGateway;
let server: http.Server;
let wss: WebSocketServer;
/** TCP connections the upstream accepted. */
let accepted = 0;
const upgrades: { url: string; headers: http.IncomingHttpHeaders }[] = [];

beforeAll(async () => {
  tmp = await tempDir('swy-wss-');
  pki = makePki(tmp.dir);
  const cert = pki.server('ws', 'ws.test', ['ws.test'], '0E01');
  server = http.createServer((_req, res) => res.end('plain'));
  server.on('connection', () => accepted++);
  wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    upgrades.push({ url: req.url ?? '', headers: req.headers });
    ws.on('message', (data) => ws.send(`echo:${String(data)}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  gw = await startTestGateway();
  await gw.put('/ssls/ws', { cert: cert.cert, key: cert.key, snis: ['ws.test'] });
  await gw.put('/consumers/jack', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } });
  await gw.put('/routes/wss', {
    uri: '/chat/*',
    hosts: ['ws.test'],
    enable_websocket: true,
    plugins: {
      'key-auth': {},
      'proxy-rewrite': { regex_uri: ['^/chat/(.*)', '/rooms/$1'], headers: { set: { 'x-rewritten': 'yes', 'x-consumer': '$consumer_name' } } },
    },
    upstream: { nodes: { [addr]: 1 } },
  });
});

afterAll(async () => {
  await gw?.close();
  for (const c of wss?.clients ?? []) c.terminate();
  wss?.close();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await tmp?.cleanup();
});

/** Opens wss://ws.test/<path> (SNI and Host ws.test, verified against the test CA); resolves open or the HTTP refusal. */
function connect(p: string, headers: Record<string, string>): Promise<{ ws: WebSocket } | { status: number; body: string }> {
  const opts: WebSocket.ClientOptions & ConnectionOptions = { ca: pki.ca, servername: 'ws.test', headers: { host: 'ws.test', ...headers } };
  const ws = new WebSocket(`wss://127.0.0.1:${gw.httpsPort}${p}`, opts);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', reject);
  });
}

describe('wss through the HTTPS listener', () => {
  test('key-auth and proxy-rewrite apply to the upgrade; frames flow both ways', async () => {
    const r = await connect('/chat/lobby?x=1', { apikey: 'jack-key' });
    expect('ws' in r, JSON.stringify(r)).toBe(true);
    const { ws } = r as { ws: WebSocket };
    try {
      const up = upgrades.at(-1)!;
      expect(up.url).toBe('/rooms/lobby?x=1');
      expect(up.headers['x-rewritten']).toBe('yes');
      expect(up.headers['x-consumer']).toBe('jack');
      expect(up.headers['x-forwarded-proto']).toBe('https');
      for (let i = 0; i < 3; i++) {
        const reply = new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));
        ws.send(`m${i}`);
        expect(await reply).toBe(`echo:m${i}`);
      }
    } finally {
      ws.close();
    }
  });

  test('a missing or wrong key gets 401 and the upstream never sees a connection', async () => {
    const before = accepted;
    const seen = upgrades.length;
    const missing = await connect('/chat/lobby', {});
    expect(missing).toEqual({ status: 401, body: '{"message":"Missing API key in request"}\n' });
    const wrong = await connect('/chat/lobby', { apikey: 'nope' });
    expect(wrong).toEqual({ status: 401, body: '{"message":"Invalid API key in request"}\n' });
    // Give a stray connection time to show up on the upstream before concluding there was none.
    await new Promise((r) => setTimeout(r, 100));
    expect(accepted).toBe(before);
    expect(upgrades.length).toBe(seen);
  });
});
