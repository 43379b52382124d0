// WebSocket through the real gateway (apisix-compat 7 WebSocket): a `ws` server upstream, a `ws` client.
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';

let gw: TestGateway;
let wss: WebSocketServer;
/** Server-side sockets, newest last, with the close code each one saw. */
const serverSide: { ws: WebSocket; closed: Promise<number>; path: string }[] = [];

beforeAll(async () => {
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  wss.on('connection', (ws, req) => {
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    serverSide.push({ ws, closed, path: req.url ?? '' });
    // Echo with a prefix so the client can tell the upstream answered; binary frames stay binary.
    ws.on('message', (data, isBinary) => {
      if (isBinary) ws.send(Buffer.concat([Buffer.from([0xff]), data as Buffer]), { binary: true });
      else if (String(data) === 'bye') ws.close(4001, 'server says bye');
      else ws.send(`echo:${String(data)}`);
    });
  });
  const addr = `127.0.0.1:${(wss.address() as AddressInfo).port}`;
  gw = await startTestGateway();
  await gw.put('/routes/ws', { uri: '/ws/*', enable_websocket: true, upstream: { nodes: { [addr]: 1 } } });
  await gw.put('/routes/plain', { uri: '/plain/*', upstream: { nodes: { [addr]: 1 } } });
});

afterAll(async () => {
  await gw?.close();
  for (const c of wss?.clients ?? []) c.terminate();
  await new Promise((r) => wss?.close(r));
});

function open(path: string): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${gw.port}${path}`);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function next(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) => ws.once('message', (data, isBinary) => resolve({ data: data as Buffer, isBinary })));
}

describe('websocket proxying', () => {
  test('text and binary frames both ways; client close reaches the upstream', async () => {
    const ws = await open('/ws/chat?room=1');
    expect(serverSide.at(-1)!.path).toBe('/ws/chat?room=1');
    for (let i = 0; i < 5; i++) {
      const reply = next(ws);
      ws.send(`hello ${i}`);
      const m = await reply;
      expect(m.isBinary).toBe(false);
      expect(m.data.toString()).toBe(`echo:hello ${i}`);
    }
    const bin = Buffer.from([0, 1, 2, 3, 254]);
    const reply = next(ws);
    ws.send(bin, { binary: true });
    const m = await reply;
    expect(m.isBinary).toBe(true);
    expect(Buffer.compare(m.data, Buffer.concat([Buffer.from([0xff]), bin]))).toBe(0);
    // A large binary frame crosses several TCP segments.
    const big = Buffer.alloc(256 * 1024, 7);
    const bigReply = next(ws);
    ws.send(big, { binary: true });
    expect((await bigReply).data.length).toBe(big.length + 1);

    const server = serverSide.at(-1)!;
    ws.close(4000, 'client done');
    expect(await server.closed).toBe(4000);
  });

  test('upstream close reaches the client', async () => {
    const ws = await open('/ws/x');
    const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.send('bye');
    expect(await closed).toEqual({ code: 4001, reason: 'server says bye' });
  });

  // APISIX proxies an upgrade request on a route without enable_websocket as a plain request: the upstream
  // (a ws server, whose plain HTTP answer is 426) decides, and no WebSocket session is established.
  test('without enable_websocket the upgrade is proxied as a plain request', async () => {
    const before = serverSide.length;
    const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/plain/x`);
    const status = await new Promise<number>((resolve, reject) => {
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
      });
      ws.once('open', () => reject(new Error('upgrade was accepted')));
    });
    ws.on('error', () => undefined);
    ws.terminate();
    expect(status).toBe(426);
    expect(serverSide.length).toBe(before);
  });
});
