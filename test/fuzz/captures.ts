// Real client first flights captured on loopback for the fuzz targets: TLS ClientHellos from openssl s_client
// and node:tls, MQTT CONNECT packets from mosquitto_pub. A recording server keeps the first bytes of each
// connection until a length check says the first message is complete, then closes it.
import { execFile } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';

type Complete = (buf: Buffer) => boolean;

/** Starts a one-shot recorder; `run(port)` makes the client connect; resolves the bytes received. */
async function capture(complete: Complete, run: (port: number) => void, timeoutMs = 5000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('capture timed out')), timeoutMs);
      server.once('connection', (s) => {
        s.on('error', () => undefined);
        s.on('data', (d) => {
          chunks.push(d);
          const all = Buffer.concat(chunks);
          if (complete(all)) {
            clearTimeout(timer);
            s.destroy();
            resolve(all);
          }
        });
      });
      run(port);
    });
  } finally {
    server.close();
  }
}

/** A TLS record stream holding a whole handshake message (the ClientHello). */
export const helloComplete: Complete = (b) => {
  let off = 0;
  let hs = Buffer.alloc(0);
  while (off + 5 <= b.length) {
    const len = b.readUInt16BE(off + 3);
    if (off + 5 + len > b.length) return false;
    hs = Buffer.concat([hs, b.subarray(off + 5, off + 5 + len)]);
    off += 5 + len;
    if (hs.length >= 4 && hs.length >= 4 + hs.readUIntBE(1, 3)) return true;
  }
  return false;
};

/** ClientHello from node:tls; `servername` undefined sends no SNI. */
export function nodeHello(servername: string | undefined, opts: tls.ConnectionOptions = {}): Promise<Buffer> {
  return capture(helloComplete, (port) => {
    const s = tls.connect({ port, host: '127.0.0.1', servername: servername ?? '', rejectUnauthorized: false, ...opts });
    s.on('error', () => undefined);
  });
}

/** ClientHello from `openssl s_client` with extra arguments (e.g. -servername x, -tls1_2, -alpn h2). */
export function opensslHello(args: string[]): Promise<Buffer> {
  return capture(helloComplete, (port) => {
    const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { timeout: 5000 }, () => undefined);
    child.stdin?.end();
  });
}

/** One MQTT packet from its fixed header. */
export const mqttComplete: Complete = (b) => {
  let len = 0;
  let mult = 1;
  for (let i = 1; i <= 4 && i < b.length; i++) {
    len += (b[i]! & 0x7f) * mult;
    mult *= 128;
    if ((b[i]! & 0x80) === 0) return b.length >= i + 1 + len;
  }
  return false;
};

/** The CONNECT packet mosquitto_pub sends with extra arguments (-i id, -u user, -V mqttv5, --will-topic...). */
export function mosquittoConnect(args: string[]): Promise<Buffer> {
  return capture(mqttComplete, (port) => {
    execFile('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-t', 't', '-m', 'm', ...args], { timeout: 5000 }, () => undefined);
  });
}
