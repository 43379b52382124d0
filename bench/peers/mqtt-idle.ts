// Idle MQTT sessions for the memory scenario (think sensors holding a connection to a broker).
//   <port> <count> <prefix>   opens <count> connections, 200 at a time; each sends an MQTT 3.1.1 CONNECT
//                             (client id <prefix>-<i>, clean session, keep alive 0 so nobody pings during the
//                             measurement) and waits for the broker's CONNACK (return code 0), so the session is
//                             proxied end to end; then it stays silent. Prints "connected <n> failed <m>" and
//                             holds the sessions until SIGTERM.
import net from 'node:net';
import mqttPacket from 'mqtt-packet';

const [portArg, countArg, prefixArg] = process.argv.slice(2);
const port = Number(portArg);
const prefix = prefixArg ?? 'idle';
const sockets: net.Socket[] = [];

function connectPacket(clientId: string): Buffer {
  return mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId });
}

function openOne(i: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => finish(false), 10_000);
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      s.removeAllListeners('data');
      if (ok) sockets.push(s);
      else s.destroy();
      resolve(ok);
    };
    s.on('error', () => finish(false));
    s.once('connect', () => s.write(connectPacket(`${prefix}-${i}`)));
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      // CONNACK: 0x20, remaining length 2, session-present flags, return code.
      if (got.length >= 4) finish(got[0] === 0x20 && got[1] === 2 && got[3] === 0);
    });
  });
}

async function connectAll(count: number): Promise<void> {
  let ok = 0;
  let failed = 0;
  for (let i = 0; i < count; i += 200) {
    const batch: Promise<boolean>[] = [];
    for (let k = i; k < Math.min(count, i + 200); k++) batch.push(openOne(k));
    for (const r of await Promise.all(batch)) {
      if (r) ok++;
      else failed++;
    }
  }
  console.log(`connected ${ok} failed ${failed}`);
}

if (!Number.isInteger(port)) {
  console.error('usage: mqtt-idle.ts <port> <count> [client id prefix]');
  process.exit(2);
}
process.once('SIGTERM', () => {
  for (const s of sockets) s.destroy();
  process.exit(0);
});
await connectAll(Math.min(Number(countArg) || 0, 60_000));
setInterval(() => undefined, 60_000);
