// Comparison peer: the smallest reasonable Node reverse proxy, node:http in front of an undici Pool (the
// dispatcher the gateway itself uses), hop-by-hop headers dropped, bodies streamed.
// `node bench/peers/undici-proxy.ts <port> <upstream-url>`; prints "listening" when bound.
import http from 'node:http';
import { pipeline } from 'node:stream';
import { Pool } from 'undici';

const [port, upstream] = [Number(process.argv[2]), process.argv[3]];
if (!Number.isInteger(port) || !upstream) {
  console.error('usage: undici-proxy.ts <port> <upstream-url>');
  process.exit(2);
}

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);
const pool = new Pool(upstream, { connections: 64, pipelining: 1 });

function forwardable(h: http.IncomingHttpHeaders | Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k in h) {
    const v = h[k];
    if (v !== undefined && !HOP.has(k)) out[k] = v;
  }
  return out;
}

const server = http.createServer((req, res) => {
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  pool
    .request({ path: req.url ?? '/', method: req.method as 'GET', headers: forwardable(req.headers), body: hasBody ? req : null })
    .then(
      (up) => {
        // The client may have gone while the upstream answered; pipeline() throws on a destroyed target.
        // An aborted upstream body emits 'error'; without a listener that would crash the peer.
        up.body.on('error', () => undefined);
        if (res.destroyed) {
          up.body.destroy();
          return;
        }
        res.writeHead(up.statusCode, forwardable(up.headers));
        pipeline(up.body, res, () => undefined);
      },
      () => {
        if (!res.headersSent && !res.destroyed) res.writeHead(502).end();
      },
    );
});
server.keepAliveTimeout = 75_000;
server.listen(port, '127.0.0.1', 4096, () => console.log('listening'));

process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => void pool.close().then(() => process.exit(0)));
});
