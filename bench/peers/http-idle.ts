// Idle HTTP/1.1 keep-alive connections for the memory scenario and bench/conn-memory.ts (think browsers holding a connection).
//   <port> <count>   opens <count> connections, 200 at a time; each sends one GET and reads its whole answer
//                    (content-length framed), then stays idle on the kept-alive connection; prints
//                    "connected <n> failed <m>" and holds them until SIGTERM.
import net from 'node:net';

const [portArg, countArg] = process.argv.slice(2);
const port = Number(portArg);
const sockets: net.Socket[] = [];
const REQUEST = 'GET / HTTP/1.1\r\nHost: bench\r\n\r\n';

function openOne(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let buf = '';
    const timer = setTimeout(() => finish(false), 10_000);
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      s.removeAllListeners('data');
      if (ok) sockets.push(s);
      else s.destroy();
      resolve(ok);
    };
    s.on('error', () => finish(false));
    s.once('connect', () => s.write(REQUEST));
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const m = /\r\ncontent-length: *(\d+)/i.exec(buf.slice(0, end));
      if (m === null) return finish(false);
      if (buf.length - end - 4 >= Number(m[1])) finish(/^HTTP\/1\.1 200/.test(buf));
    });
  });
}

async function connectAll(count: number): Promise<void> {
  let ok = 0;
  let failed = 0;
  for (let i = 0; i < count; i += 200) {
    const batch: Promise<boolean>[] = [];
    for (let k = i; k < Math.min(count, i + 200); k++) batch.push(openOne());
    for (const r of await Promise.all(batch)) {
      if (r) ok++;
      else failed++;
    }
  }
  console.log(`connected ${ok} failed ${failed}`);
}

if (!Number.isInteger(port)) {
  console.error('usage: http-idle.ts <port> <count>');
  process.exit(2);
}
await connectAll(Math.min(Number(countArg) || 0, 60_000));

process.once('SIGTERM', () => {
  for (const s of sockets) s.destroy();
  process.exit(0);
});
setInterval(() => undefined, 60_000);
