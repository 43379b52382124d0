// The idle timeout of spliced TCP sessions (protocols/stream/splice.ts) is one sweep over all sessions, not a
// timer per session: reads in either direction keep a session open, silence closes both sockets, and a
// session keeps no timer, 'timeout' listener or cached address objects on its sockets (what an idle MQTT
// session costs is counted by the ten thousand).
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Splice } from '../../protocols/stream/splice.ts';

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];

afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

function accept(): Promise<{ port: number; next: Promise<net.Socket> }> {
  let got!: (s: net.Socket) => void;
  const next = new Promise<net.Socket>((r) => (got = r));
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s);
    got(s);
  });
  servers.push(srv);
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({ port: (srv.address() as net.AddressInfo).port, next })));
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    sockets.push(s);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** client -> [down | splice | up] -> server. */
async function rig(idleMs: number) {
  const front = await accept();
  const client = await connect(front.port);
  const down = await front.next;
  down.pause();
  const back = await accept();
  const up = await connect(back.port);
  const server = await back.next;
  // What a session reads before it splices (its addresses), so node caches them on the sockets.
  expect(down.remoteAddress).toBe('127.0.0.1');
  expect(up.localPort).toBeGreaterThan(0);
  let closedAt = 0;
  const closed = new Promise<void>((resolve) => {
    new Splice(down, up, { spliceClosed: () => ((closedAt = performance.now()), resolve()) }, null).start([], false, idleMs);
  });
  return { client, server, down, up, closed, closedAt: () => closedAt };
}

/** Node's own timer slot of a socket (null until setTimeout was called on it). */
function timerOf(s: net.Socket): unknown {
  const k = Object.getOwnPropertySymbols(s).find((sym) => sym.description === 'timeout');
  return k === undefined ? null : (s as unknown as Record<symbol, unknown>)[k];
}

describe('stream splice idle timeout', () => {
  it('keeps no timer, timeout listener, no-op end listener or cached address objects per session', async () => {
    const r = await rig(60_000);
    for (const s of [r.down, r.up]) {
      expect(timerOf(s)).toBeNull();
      expect(s.listenerCount('timeout')).toBe(0);
      // Node's own 'end' listener is a no-op on half-open sockets and is dropped: one listener, no array.
      expect(s.listenerCount('end')).toBe(1);
      expect((s as net.Socket & { _peername?: unknown })._peername).toBeUndefined();
      expect((s as net.Socket & { _sockname?: unknown })._sockname).toBeUndefined();
    }
    // Bytes still flow both ways.
    const atServer = new Promise<string>((resolve) => r.server.once('data', (d: Buffer) => resolve(d.toString())));
    r.client.write('ping');
    expect(await atServer).toBe('ping');
    const atClient = new Promise<string>((resolve) => r.client.once('data', (d: Buffer) => resolve(d.toString())));
    r.server.write('pong');
    expect(await atClient).toBe('pong');
  });

  it('reads in either direction keep a session open past its timeout; silence then closes both sockets', async () => {
    const idleMs = 1000;
    const r = await rig(idleMs);
    let open = true;
    void r.closed.then(() => (open = false));
    r.server.on('data', () => undefined);
    r.client.on('data', () => undefined);
    // 25 bytes 100 ms apart, alternating directions: 2.5 s of traffic, more than twice the idle timeout.
    for (let i = 0; i < 25; i++) {
      (i % 2 === 0 ? r.client : r.server).write('x');
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(open).toBe(true);
    const quietFrom = performance.now();
    await r.closed;
    // Generous bounds: not before the timeout (the sweep only ever closes late), and within seconds.
    expect(r.closedAt() - quietFrom).toBeGreaterThanOrEqual(idleMs - 100);
    expect(r.closedAt() - quietFrom).toBeLessThan(10_000);
    expect(r.down.destroyed && r.up.destroyed).toBe(true);
  });
});
