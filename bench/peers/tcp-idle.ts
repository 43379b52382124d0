// Idle TCP connections for the memory scenario (think of idle MQTT clients).
//   server <port>                 accepts, echoes each connection's first bytes, then holds it open
//   client <port> <count>         opens <count> connections, 200 at a time; each sends one byte and waits
//                                 for the echo (so the connection is proxied end to end), then stays idle;
//                                 prints "connected <n> failed <m>" and holds them until SIGTERM.
import net from 'node:net';

const [mode, portArg, countArg] = process.argv.slice(2);
const port = Number(portArg);
const sockets: net.Socket[] = [];

function serve(): void {
  const server = net.createServer((s) => {
    sockets.push(s);
    s.once('data', (d) => s.write(d));
    s.on('error', () => undefined);
  });
  server.listen(port, '127.0.0.1', 4096, () => console.log('listening'));
}

function openOne(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => finish(false), 10_000);
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      if (ok) sockets.push(s);
      else s.destroy();
      resolve(ok);
    };
    s.on('error', () => finish(false));
    s.once('connect', () => s.write('x'));
    s.once('data', () => finish(true));
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

if (!Number.isInteger(port) || (mode !== 'server' && mode !== 'client')) {
  console.error('usage: tcp-idle.ts server <port> | client <port> <count>');
  process.exit(2);
}
if (mode === 'server') serve();
else await connectAll(Math.min(Number(countArg) || 0, 60_000));

process.once('SIGTERM', () => {
  for (const s of sockets) s.destroy();
  process.exit(0);
});
