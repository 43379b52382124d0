// The forwarding phase of a TCP stream session (protocols/stream/splice.ts) on real loopback sockets: bytes
// both ways, a FIN passed on while the other direction keeps flowing, backpressure (a slow upstream pauses
// the client), the idle timeout, a reset upstream, bytes read before the upstream existed; and the owner is
// told exactly once, after both sockets closed.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { Splice, UPSTREAM_ONREAD } from '../../protocols/stream/splice.ts';

interface Rig {
  /** The test's client socket and upstream-side socket (what the splice connects). */
  client: net.Socket;
  server: net.Socket;
  /** The gateway's two sockets. */
  down: net.Socket;
  up: net.Socket;
  closed: Promise<{ failed: boolean; calls: () => number }>;
  splice: Splice<string>;
}

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];

afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

function listen(onConn: (s: net.Socket) => void, highWaterMark?: number): Promise<number> {
  const srv = net.createServer({ allowHalfOpen: true, highWaterMark }, (s) => {
    sockets.push(s);
    onConn(s);
  });
  servers.push(srv);
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve((srv.address() as net.AddressInfo).port)));
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    sockets.push(s);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Connects as the gateway does for plain upstreams: reads through UPSTREAM_ONREAD, paused until the splice starts. */
function connectUserReads(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true, onread: UPSTREAM_ONREAD });
    s.pause();
    sockets.push(s);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** client -> [down | splice | up] -> server, with `early` bytes handed over as if peeked before. */
async function rig(
  idleMs = 10_000,
  early: Buffer[] = [],
  clientEnded = false,
  beforeStart?: (down: net.Socket) => Promise<void>,
  userReads = false,
  /** highWaterMark of the gateway's client socket: a large one leaves writes queued while write() says true. */
  downHighWaterMark?: number,
): Promise<Rig> {
  let server!: net.Socket;
  const upPort = await listen((s) => (server = s));
  let down!: net.Socket;
  const gotDown = new Promise<void>((resolve) => {
    void listen((s) => {
      down = s;
      s.pause();
      resolve();
    }, downHighWaterMark).then(async (p) => {
      const c = await connect(p);
      clientRef.c = c;
    });
  });
  const clientRef: { c?: net.Socket } = {};
  await gotDown;
  while (clientRef.c === undefined) await new Promise((r) => setTimeout(r, 5));
  if (beforeStart) await beforeStart(down);
  const up = userReads ? await connectUserReads(upPort) : await connect(upPort);
  while (server === undefined) await new Promise((r) => setTimeout(r, 5));
  let calls = 0;
  let resolveClosed!: (v: { failed: boolean; calls: () => number }) => void;
  const closed = new Promise<{ failed: boolean; calls: () => number }>((r) => (resolveClosed = r));
  const splice = new Splice(down, up, { spliceClosed: (_sp, failed) => {
    calls++;
    resolveClosed({ failed, calls: () => calls });
  } }, 'state');
  splice.start(early, clientEnded, idleMs, userReads);
  return { client: clientRef.c, server, down, up, closed, splice };
}

function collect(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  return new Promise((resolve) => s.once('end', () => resolve(Buffer.concat(chunks))));
}

describe('stream splice', () => {
  it('forwards both ways and passes a FIN on while the other direction keeps flowing', async () => {
    const r = await rig();
    const atServer = collect(r.server);
    r.client.end('request');
    expect((await atServer).toString()).toBe('request');
    // The client half-closed; the upstream still answers and then closes its side.
    const atClient = collect(r.client);
    r.server.end('answer after the FIN');
    expect((await atClient).toString()).toBe('answer after the FIN');
    const c = await r.closed;
    expect(c.failed).toBe(false);
    await new Promise((res) => setTimeout(res, 50));
    expect(c.calls()).toBe(1);
    expect(r.splice.state).toBe('state');
  });

  it('pauses the client while the upstream does not read, and delivers every byte once it does', async () => {
    const r = await rig();
    r.server.pause();
    const chunk = Buffer.alloc(64 * 1024, 7);
    // Bounded in bytes (kernel buffers on loopback hold a few MB) and time; stops once the splice paused.
    const total = 1024 * chunk.length;
    const deadline = Date.now() + 8000;
    let written = 0;
    while (written < total && !r.down.isPaused() && Date.now() < deadline) {
      if (r.client.write(chunk)) written += chunk.length;
      else {
        written += chunk.length;
        // Wait for the client's buffer to drain, or notice that the splice stopped reading.
        while (r.client.writableNeedDrain && !r.down.isPaused() && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
      }
    }
    expect(r.down.isPaused()).toBe(true);
    expect(written).toBeLessThan(total);
    let received = 0;
    r.server.on('data', (d: Buffer) => (received += d.length));
    r.server.resume();
    r.client.end();
    await new Promise((res) => r.server.once('end', res));
    expect(received).toBe(written);
    r.server.end();
    expect((await r.closed).failed).toBe(false);
  });

  it('closes both sockets after the idle timeout', async () => {
    const r = await rig(150);
    const t0 = performance.now();
    const c = await r.closed;
    expect(performance.now() - t0).toBeGreaterThanOrEqual(100);
    expect(c.failed).toBe(false);
    expect(r.down.destroyed && r.up.destroyed).toBe(true);
  });

  it('tears the client down when the upstream resets, reporting a failure', async () => {
    const r = await rig();
    // The client half-open socket sees the gateway's FIN (or a reset), never its own close.
    const clientTold = new Promise((res) => {
      r.client.once('end', res);
      r.client.once('error', res);
    });
    r.client.resume();
    r.server.resetAndDestroy();
    expect((await r.closed).failed).toBe(true);
    await clientTold;
    expect(r.down.destroyed).toBe(true);
  });

  it('replays bytes read before the upstream was connected, and a FIN that came with them', async () => {
    const r = await rig(10_000, [Buffer.from('peeked '), Buffer.from('bytes')], true);
    expect((await collect(r.server)).toString()).toBe('peeked bytes');
    const atClient = collect(r.client);
    r.server.end('bye');
    expect((await atClient).toString()).toBe('bye');
    expect((await r.closed).failed).toBe(false);
  });
  it('upstream reads through the shared/private onread buffers: concurrent sessions, slow clients, every byte intact', async () => {
    // Two sessions share the module's read buffers. Upstreams send small writes (shared buffer, copied out) and
    // large ones (private buffers written without a copy) while the clients stop reading for a while, so writes
    // to them are partial and queued (with write() still saying true below the first session's 4 MiB
    // highWaterMark): a buffer reused while a write holds it would corrupt the bytes.
    const sessions = await Promise.all([rig(10_000, [], false, undefined, true, 4 << 20), rig(10_000, [], false, undefined, true)]);
    const results = sessions.map(async (r, k) => {
      const sent = createHash('sha256');
      const got = createHash('sha256');
      let received = 0;
      r.client.pause();
      r.client.on('data', (d: Buffer) => {
        got.update(d);
        received += d.length;
      });
      const total = { n: 0 };
      const done = new Promise<void>((res) => r.client.once('end', () => res()));
      // Bounded: 48 rounds of one small and one large write (about 6 MB per session).
      for (let i = 0; i < 48; i++) {
        const small = Buffer.alloc(100 + ((i * 37) % 900), (i + k * 101) & 0xff);
        const large = Buffer.alloc(64 * 1024 + ((i * 7919) % 65536), (i * 3 + k * 17) & 0xff);
        for (const b of [small, large]) {
          sent.update(b);
          total.n += b.length;
          if (!r.server.write(b)) await new Promise((res) => r.server.once('drain', res));
        }
        // The client reads nothing for the first rounds (kernel buffers fill, the splice queues and pauses).
        if (i === 16) r.client.resume();
      }
      r.client.resume();
      r.server.end();
      await done;
      expect(received).toBe(total.n);
      expect(got.digest('hex')).toBe(sent.digest('hex'));
      r.client.end();
      expect((await r.closed).failed).toBe(false);
    });
    await Promise.all(results);
  });

  it('onread upstream: the client half-closes, the upstream still answers and ends; backpressure resumes on drain', async () => {
    const r = await rig(10_000, [], false, undefined, true);
    const atServer = collect(r.server);
    r.client.end('request');
    expect((await atServer).toString()).toBe('request');
    const atClient = collect(r.client);
    r.server.end(Buffer.alloc(3 * 1024 * 1024, 'z'));
    const body = await atClient;
    expect(body.length).toBe(3 * 1024 * 1024);
    expect(body.every((b) => b === 0x7a)).toBe(true);
    expect((await r.closed).failed).toBe(false);
  });
});
