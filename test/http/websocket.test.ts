// WebSocket through the real gateway (apisix-compat 7 WebSocket): a `ws` server upstream, a `ws` client. Also
// what the tunnel reports: the access log's status is the upstream's (101, or its refusal), refusals feed
// passive health, and connect retries stop at retry_timeout.
import { readFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';

let gw: TestGateway;
let wss: WebSocketServer;
/** An upstream refusing every upgrade with 403; `refused` counts them. */
let refuser: WebSocketServer;
let refused = 0;
/** TCP servers that accept and never answer (a TLS handshake to them never completes). */
const silent: { server: net.Server; accepted: number; sockets: net.Socket[] }[] = [];
let tmp: { dir: string; cleanup(): Promise<void> };
let logFile: string;
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
  refuser = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    verifyClient: (_info, cb) => {
      refused++;
      cb(false, 403, 'no');
    },
  });
  await new Promise((r) => refuser.once('listening', r));
  for (let i = 0; i < 4; i++) {
    const s = { server: net.createServer(), accepted: 0, sockets: [] as net.Socket[] };
    s.server.on('connection', (c) => {
      s.accepted++;
      s.sockets.push(c);
    });
    await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', r));
    silent.push(s);
  }
  tmp = await tempDir('swy-ws-');
  logFile = path.join(tmp.dir, 'access.log');
  gw = await startTestGateway({ config: { switchyard: { access_log: { enable: true, path: logFile } } } });
  await gw.put('/routes/ws', { uri: '/ws/*', enable_websocket: true, upstream: { nodes: { [addr]: 1 } } });
  await gw.put('/routes/plain', { uri: '/plain/*', upstream: { nodes: { [addr]: 1 } } });
});

afterAll(async () => {
  await gw?.close();
  for (const c of wss?.clients ?? []) c.terminate();
  await new Promise((r) => wss?.close(r));
  await new Promise((r) => refuser?.close(r));
  for (const s of silent) {
    for (const c of s.sockets) c.destroy();
    await new Promise((r) => s.server.close(r));
  }
  await tmp?.cleanup();
});

/** The access log line of `uri` (bounded wait: a tunnel is logged when it closes). */
async function logged(uri: string): Promise<any> {
  return waitFor(async () => {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l)).find((l) => l.request_uri === uri);
  }, 10_000, 20);
}

/** Tries an upgrade: the status the client got (101 when it opened, then closed by the client). */
function upgrade(url: string): Promise<number> {
  const ws = new WebSocket(url);
  ws.on('error', () => undefined);
  return new Promise<number>((resolve) => {
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      ws.terminate();
      resolve(res.statusCode ?? 0);
    });
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
  });
}

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

describe('what the tunnel reports', () => {
  test('the access log records 101 for an accepted upgrade and the upstream refusal (403) for a refused one', async () => {
    const refuserAddr = `127.0.0.1:${(refuser.address() as AddressInfo).port}`;
    await gw.put('/routes/ws-refused', { uri: '/refused/*', enable_websocket: true, upstream: { nodes: { [refuserAddr]: 1 } } });
    expect(await upgrade(`ws://127.0.0.1:${gw.port}/ws/logged`)).toBe(101);
    expect(await upgrade(`ws://127.0.0.1:${gw.port}/refused/logged`)).toBe(403);
    expect(await logged('/ws/logged')).toMatchObject({ status: 101, upstream_status: 101 });
    expect(await logged('/refused/logged')).toMatchObject({ status: 403, upstream_status: 403 });
  });

  test('passive health: a node refusing upgrades is marked unhealthy after http_failures refusals', async () => {
    const good = `127.0.0.1:${(wss.address() as AddressInfo).port}`;
    const bad = `127.0.0.1:${(refuser.address() as AddressInfo).port}`;
    await gw.put('/routes/ws-passive', {
      uri: '/passive/*',
      enable_websocket: true,
      upstream: { retries: 0, nodes: { [good]: 1, [bad]: 1 }, checks: { passive: { unhealthy: { http_statuses: [403], http_failures: 2 } } } },
    });
    const before = refused;
    const first: number[] = [];
    for (let i = 0; i < 4; i++) first.push(await upgrade(`ws://127.0.0.1:${gw.port}/passive/${i}`));
    // Round robin over two nodes: two of four reached the refuser, which is then unhealthy.
    expect(first.filter((s) => s === 403)).toHaveLength(2);
    expect(refused - before).toBe(2);
    for (let i = 0; i < 8; i++) expect(await upgrade(`ws://127.0.0.1:${gw.port}/passive/after-${i}`)).toBe(101);
    expect(refused - before).toBe(2);
  });

  test('an upstream that closes without answering the upgrade: 502 with the error page, logged 502', async () => {
    const hangup = net.createServer((c) => c.once('data', () => c.destroy()));
    await new Promise<void>((r) => hangup.listen(0, '127.0.0.1', r));
    try {
      await gw.put('/routes/ws-hangup', {
        uri: '/hangup/*',
        enable_websocket: true,
        upstream: { nodes: { [`127.0.0.1:${(hangup.address() as AddressInfo).port}`]: 1 } },
      });
      const c = net.connect(gw.port, '127.0.0.1');
      c.write('GET /hangup/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
      const answer = await new Promise<string>((resolve) => {
        let buf = '';
        c.on('data', (d: Buffer) => (buf += d.toString('latin1')));
        c.once('close', () => resolve(buf));
      });
      const [head = '', body = ''] = answer.split('\r\n\r\n');
      expect(head.split('\r\n')[0]).toBe('HTTP/1.1 502 Bad Gateway');
      expect(head.toLowerCase()).toContain('content-type: text/html');
      expect(body).toContain('<title>502 Bad Gateway</title>');
      expect(Number(/content-length: (\d+)/i.exec(head)?.[1])).toBe(Buffer.byteLength(body));
      expect(await logged('/hangup/x')).toMatchObject({ status: 502, upstream_status: 502 });
    } finally {
      await new Promise((r) => hangup.close(r));
    }
  });

  test('connect retries stop once retry_timeout has passed', async () => {
    // TLS to servers that never answer: each attempt ends at the connect timeout (0.3 s). With retries 3 and
    // retry_timeout 0.5 s the second failure (at ~0.6 s) is the last: two nodes tried, not four (one when a
    // loaded machine fires the first timeout after 0.5 s).
    const nodes = Object.fromEntries(silent.map((s) => [`127.0.0.1:${(s.server.address() as AddressInfo).port}`, 1]));
    await gw.put('/routes/ws-retry', {
      uri: '/retry/*',
      enable_websocket: true,
      upstream: { scheme: 'https', retries: 3, retry_timeout: 0.5, timeout: { connect: 0.3, send: 1, read: 1 }, nodes },
    });
    const status = await upgrade(`ws://127.0.0.1:${gw.port}/retry/x`);
    expect(status).toBe(504);
    const tried = silent.reduce((n, s) => n + s.accepted, 0);
    expect(tried).toBeGreaterThanOrEqual(1);
    expect(tried).toBeLessThanOrEqual(2);
    expect(await logged('/retry/x')).toMatchObject({ status: 504, upstream_status: 504 });
  });
});
