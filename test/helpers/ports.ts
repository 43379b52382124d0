// Random free loopback ports for peers started by tests.
import net from 'node:net';
import dgram from 'node:dgram';

/**
 * A free loopback port below the kernel's ephemeral range (32768+): ports the kernel hands out with listen(0)
 * are also what outgoing connections of busy tests take, so a port released by listen(0) was sometimes taken
 * by a client socket before the peer bound it (EADDRINUSE under load). Random picks in 10000-32000 are checked
 * by binding, and fall back to listen(0).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const candidate = 10000 + Math.floor(Math.random() * 22000);
    if (await canBind(candidate, host)) return candidate;
  }
  return await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function canBind(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A port free for both TCP and UDP (stream proxy tests). */
export async function freeTcpUdpPort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort(host);
    const ok = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(port, host, () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free tcp+udp port');
}
