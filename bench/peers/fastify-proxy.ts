// Comparison peer: @fastify/http-proxy (fastify 5, reply-from over undici) forwarding everything to one
// upstream. `node bench/peers/fastify-proxy.ts <port> <upstream-url>`; prints "listening" when bound.
import Fastify from 'fastify';
import httpProxy from '@fastify/http-proxy';

const [port, upstream] = [Number(process.argv[2]), process.argv[3]];
if (!Number.isInteger(port) || !upstream) {
  console.error('usage: fastify-proxy.ts <port> <upstream-url>');
  process.exit(2);
}

const app = Fastify({ logger: false });
await app.register(httpProxy, { upstream, undici: { connections: 64, pipelining: 1 } });
await app.listen({ port, host: '127.0.0.1', backlog: 4096 });
console.log('listening');

process.once('SIGTERM', () => {
  app.close().then(() => process.exit(0), () => process.exit(1));
});
