// Fix 1 of protocols/http3/quic-fixes.ts on the real QUICConnection prototype: streams announced while the
// connection is starting are deferred (the unpatched library shuts their write side down, which throws
// InvalidStreamState for the client's receive-only control/QPACK streams); a stopping connection still
// rejects them and a running one processes them. Fix 2 (split ClientHello) is exercised by chromium.test.ts:
// with it disabled, Chromium's handshake never completes.
import { QUICConnection } from '@matrixai/quic';
import { startStop } from '@matrixai/async-init';
import { expect, it } from 'vitest';
import { applyQuicFixes, QUIC_LIBRARY_VERSION } from '../../protocols/http3/quic-fixes.ts';

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
