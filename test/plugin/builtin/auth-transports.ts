// Clients and a WebSocket upstream for checking auth plugins over h2c, h2 over TLS and on WebSocket upgrades
// (the same plugin chain must guard every HTTP-family transport).
import type { IncomingHttpHeaders } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import type { TestGateway } from '../../helpers/gateway.ts';
import { tempDir } from '../../helpers/proc.ts';
import { makePki } from '../../https/pki.ts';

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
  /** The protocol ALPN chose on a TLS session ("h2"); undefined over h2c. */
  readonly alpn: string | undefined;
}

/**
 * One request over a prior-knowledge h2c session, or over TLS (ALPN h2) for an https origin with `tls`
 * (the gateway's CA and SNI from gatewayTls).
 */
export async function h2Request(origin: string, headers: http2.OutgoingHttpHeaders, body?: string, tls?: http2.SecureClientSessionOptions): Promise<H2Reply> {
  const session = http2.connect(origin, tls);
  try {
    return await new Promise<H2Reply>((resolve, reject) => {
      const req = session.request(headers, { endStream: body === undefined });
      let text = '';
      let head: http2.IncomingHttpHeaders = {};
      req.on('response', (h) => (head = h));
      req.on('data', (d: Buffer) => (text += d.toString()));
      req.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: text, alpn: session.alpnProtocol === 'h2c' ? undefined : session.alpnProtocol }));
      req.on('error', reject);
      session.on('error', reject);
      if (body !== undefined) req.end(body);
    });
  } finally {
    session.close();
  }
}

export interface GatewayTls {
  /** https://127.0.0.1:<the gateway's HTTPS port> */
  readonly origin: string;
  /** The name the certificate is for, sent as SNI and :authority. */
  readonly host: string;
  /** Client options trusting the gateway's certificate for `host`. */
  readonly tls: http2.SecureClientSessionOptions;
  cleanup(): Promise<void>;
}

/** Gives the gateway's HTTPS listener a certificate for auth.test (an ssl resource) issued by a throwaway CA. */
export async function gatewayTls(gw: TestGateway): Promise<GatewayTls> {
  const tmp = await tempDir('swy-auth-tls-');
  const pki = makePki(tmp.dir);
  const host = 'auth.test';
  const cert = pki.server('auth', host, [host], '0A01');
  await gw.put('/ssls/auth', { cert: cert.cert, key: cert.key, snis: [host] });
  return { origin: `https://127.0.0.1:${gw.httpsPort}`, host, tls: { ca: pki.ca, servername: host }, cleanup: tmp.cleanup };
}
