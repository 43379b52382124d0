// APISIX's status API: GET /status (liveness) and GET /status/ready (503 until the first config sync of
// every data-plane process). Loopback by default (apisix.status).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReadinessSource {
  /** null when ready, else the reason. */
  notReadyReason(): string | null;
}

export interface StatusServer {
  listen(): Promise<number>;
  close(): Promise<void>;
}

export function createStatusServer(ip: string, port: number, source: ReadinessSource): StatusServer {
  const server = http.createServer({ headersTimeout: 5000, requestTimeout: 5000 }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    res.setHeader('content-type', 'application/json');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end(JSON.stringify({ error_msg: 'method not allowed' }));
      return;
    }
    if (path === '/status') {
      res.writeHead(200).end(JSON.stringify({ status: 'ok' }));
      return;
    }
    if (path === '/status/ready') {
      const reason = source.notReadyReason();
      if (reason === null) res.writeHead(200).end(JSON.stringify({ status: 'ok' }));
      else res.writeHead(503).end(JSON.stringify({ status: 'error', error: reason }));
      return;
    }
    res.writeHead(404).end(JSON.stringify({ error_msg: 'not found' }));
  });
  return {
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, ip, () => resolve((server.address() as AddressInfo).port));
      }),
    // Answers are immediate, so nothing is drained: idle keep-alive connections (probes) must not hold close().
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
