// Fix 1 of protocols/http3/quic-fixes.ts on the real QUICConnection prototype: streams announced while the
// connection is starting are deferred (the unpatched library shuts their write side down, which throws
// InvalidStreamState for the client's receive-only control/QPACK streams); a stopping connection still
// rejects them and a running one processes them. Fix 2 (split ClientHello) is exercised by chromium.test.ts:
// with it disabled, Chromium's handshake never completes. Fix 3 (certificate by SNI) is proven end to end by
// sni.test.ts; here, the bounds on what a flood of partial Initials can make the socket hold.
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { QUICConnection } from '@matrixai/quic';
import { startStop } from '@matrixai/async-init';
import Logger, { LogLevel } from '@matrixai/logger';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  applyQuicFixes, HELLO_AGE_MS, HELLO_BYTES, HELLO_DATAGRAMS, HELLO_PENDING, PatchedQUICSocket, QUIC_LIBRARY_VERSION,
} from '../../protocols/http3/quic-fixes.ts';
import { waitFor } from '../helpers/proc.ts';
import { clientHello, cryptoFrame, initialPacket } from './initial-packets.ts';

function fakeConnection(running: boolean, status: string | null): { conn: object; touched: () => number } {
  let touched = 0;
  const conn = Object.create(QUICConnection.prototype) as Record<string | symbol, unknown>;
  // The StartStop mixin exposes its state as prototype getters; an own property shadows them.
  Object.defineProperty(conn, startStop.running, { value: running });
  Object.defineProperty(conn, startStop.status, { value: status });
  conn.conn = {
    readable: () => (touched++, []),
    writable: () => (touched++, []),
  };
  conn.streamMap = new Map();
  return { conn, touched: () => touched };
}

it('defers streams of a starting connection, processes them when running or stopping', () => {
  expect(QUIC_LIBRARY_VERSION).toBe('2.0.9');
  applyQuicFixes();
  applyQuicFixes();
  const process = (QUICConnection.prototype as unknown as { processStreams(this: object): void }).processStreams;
  const starting = fakeConnection(false, 'starting');
  process.call(starting.conn);
  expect(starting.touched()).toBe(0);
  const running = fakeConnection(true, null);
  process.call(running.conn);
  expect(running.touched()).toBe(2);
  const stopping = fakeConnection(true, 'stopping');
  process.call(stopping.conn);
  expect(stopping.touched()).toBe(2);
});

describe('fix 3: datagrams held for an incomplete ClientHello are bounded', () => {
  let socket: PatchedQUICSocket;
  let client: dgram.Socket;
  const token = Buffer.alloc(40, 9);
  // The first 1,000 bytes of a 3 KB ClientHello: never complete on its own.
  const part = clientHello('a.test', 3000).subarray(0, 1000);
  const send = (d: Buffer): Promise<void> => new Promise((r, j) => client.send(d, socket.port, '127.0.0.1', (e) => (e ? j(e) : r())));

  beforeEach(async () => {
    socket = new PatchedQUICSocket({ logger: new Logger('quic', LogLevel.SILENT) });
    await socket.start({ host: '127.0.0.1', port: 0 });
    // No socket server here: a completed ClientHello stops at the accept.
    socket.helloConfig = () => ({});
    client = dgram.createSocket('udp4');
  });
  afterEach(async () => {
    client.close();
    await socket.stop({ force: true });
  });

  it('per DCID: an attempt over HELLO_DATAGRAMS datagrams is dropped', async () => {
    const dcid = randomBytes(8);
    for (let pn = 0; pn < HELLO_DATAGRAMS + 2; pn++) {
      await send(initialPacket({ dcid, token, pn, frames: cryptoFrame(0, part), minPayload: 1160 }));
      // Dropped at the HELLO_DATAGRAMS-th datagram, then a new attempt holds the rest.
      const held = pn + 1 < HELLO_DATAGRAMS ? pn + 1 : pn + 1 - HELLO_DATAGRAMS;
      await waitFor(() => socket.pendingHellos.datagrams === held, 5000, 5);
    }
    expect(socket.pendingHellos.dcids).toBe(1);
    expect(socket.pendingHellos.bytes).toBeLessThanOrEqual(HELLO_BYTES);
  });

  it('at most HELLO_PENDING DCIDs at once (the oldest make room), and held ones expire after HELLO_AGE_MS', async () => {
    for (let i = 0; i < HELLO_PENDING + 40; i++) {
      await send(initialPacket({ dcid: randomBytes(8), token, pn: 0, frames: cryptoFrame(0, part), minPayload: 1160 }));
      // Paced: the loopback receive buffer holds only a few hundred datagrams.
      if (i % 16 === 15) await waitFor(() => socket.pendingHellos.dcids === Math.min(i + 1, HELLO_PENDING), 5000, 5);
    }
    await waitFor(() => socket.pendingHellos.dcids === HELLO_PENDING, 5000, 5);
    expect(socket.pendingHellos.datagrams).toBe(HELLO_PENDING);
    // A full table still takes a client: its complete ClientHello reaches the listener's choice.
    const snis: Array<string | undefined> = [];
    socket.helloConfig = (sni) => (snis.push(sni), {});
    await send(initialPacket({ dcid: randomBytes(8), token, pn: 0, frames: cryptoFrame(0, clientHello('b.test')), minPayload: 1160 }));
    await waitFor(() => snis.length === 1, 5000, 5);
    expect(snis).toEqual(['b.test']);
    // Nothing arrives any more: the sweep drops them all (it runs every HELLO_AGE_MS / 3).
    await waitFor(() => socket.pendingHellos.dcids === 0, HELLO_AGE_MS * 3, 50);
    expect(socket.pendingHellos.bytes).toBe(0);
  }, 20_000);

  it('Initials without a retry token are not held (the server answers them with a Retry)', async () => {
    await send(initialPacket({ dcid: randomBytes(8), pn: 0, frames: cryptoFrame(0, part), minPayload: 1160 }));
    await send(initialPacket({ dcid: randomBytes(8), token, pn: 0, frames: cryptoFrame(0, part), minPayload: 1160 }));
    await waitFor(() => socket.pendingHellos.dcids === 1, 5000, 5);
    expect(socket.pendingHellos.datagrams).toBe(1);
  });
});
