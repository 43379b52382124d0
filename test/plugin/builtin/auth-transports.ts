// Clients and a WebSocket upstream for checking auth plugins over h2c and on WebSocket upgrades
// (the same plugin chain must guard every HTTP-family transport).
import type { IncomingHttpHeaders } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';

export interface WsUpstream {
  readonly addr: string;
  /** Upgrade request headers seen, in order. */
  readonly upgrades: IncomingHttpHeaders[];
  close(): Promise<void>;
}

/** A `ws` server that records each upgrade request's headers and echoes text frames with a prefix. */
export async function startWsUpstream(): Promise<WsUpstream> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const upgrades: IncomingHttpHeaders[] = [];
  wss.on('connection', (ws, req) => {
    upgrades.push(req.headers);
    ws.on('message', (data) => ws.send(`echo:${String(data)}`));
  });
  return {
    addr: `127.0.0.1:${(wss.address() as AddressInfo).port}`,
    upgrades,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => wss.close(r));
    },
  };
}

export type WsResult = { ok: true; echo: string } | { ok: false; status: number; body: string };

/** Opens a WebSocket through the gateway, sends one frame and returns its echo, or the refusal's status/body. */
export function wsRoundTrip(url: string, headers: Record<string, string>): Promise<WsResult> {
  const ws = new WebSocket(url, { headers });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('websocket round trip timed out'));
    }, 5000);
    const done = (r: WsResult) => {
      clearTimeout(timer);
      resolve(r);
    };
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        ws.terminate();
        done({ ok: false, status: res.statusCode ?? 0, body });
      });
    });
    ws.once('open', () => {
      ws.once('message', (data) => {
        ws.close();
        done({ ok: true, echo: String(data) });
      });
      ws.send('ping');
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export interface H2Reply {
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly body: string;
}

/** One request over a prior-knowledge h2c session. */
export async function h2Request(origin: string, headers: http2.OutgoingHttpHeaders, body?: string): Promise<H2Reply> {
  const session = http2.connect(origin);
  try {
    return await new Promise<H2Reply>((resolve, reject) => {
      const req = session.request(headers, { endStream: body === undefined });
      let text = '';
      let head: http2.IncomingHttpHeaders = {};
      req.on('response', (h) => (head = h));
      req.on('data', (d: Buffer) => (text += d.toString()));
      req.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: text }));
      req.on('error', reject);
      session.on('error', reject);
      if (body !== undefined) req.end(body);
    });
  } finally {
    session.close();
  }
}
