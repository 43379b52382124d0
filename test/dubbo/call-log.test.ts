// The Dubbo call log's batch processors live as long as a route object has sessions: the last session's end
// releases them (flushing what is pending), so a route whose logger conf changed or that left the snapshot
// keeps nothing once its sessions are gone. Entries go to a real UDP syslog receiver.
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallLog, type CallRecord } from '../../protocols/dubbo/call-log.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import type { Vars } from '../../src/router/vars.ts';
import type { StreamRoute } from '../../stream-routes/types.ts';

let receiver: dgram.Socket;
const lines: string[] = [];

beforeAll(async () => {
  receiver = dgram.createSocket('udp4');
  receiver.on('message', (m) => lines.push(m.toString()));
  await new Promise<void>((r) => receiver.bind(0, '127.0.0.1', r));
});
afterAll(() => receiver?.close());

function route(id: string, tag: string): StreamRoute {
  const port = (receiver.address() as AddressInfo).port;
  // A long inactive_timeout: only a release sends the entry within the test.
  const conf = { host: '127.0.0.1', port, sock_type: 'udp', inactive_timeout: 60, batch_max_size: 1000, name: tag };
  return { id, value: { protocol: { name: 'dubbo', logger: [{ name: 'syslog', filter: [['dubbo_method', '==', 'm']], conf }] } } } as unknown as StreamRoute;
}

const NO_VARS: Vars = { get: () => undefined };
const call = (method: string): CallRecord => ({
  routeId: 'r1', service: 'S', version: '1.0.0', method, upstream: '127.0.0.1:1', status: '20', rpcTime: 0.001, startTime: Date.now(),
  remoteAddr: '127.0.0.1', remotePort: 1, serverAddr: '127.0.0.1', serverPort: 2, session: NO_VARS,
});

const tick = () => new Promise((r) => setImmediate(r));

async function waitLines(n: number): Promise<void> {
  const end = Date.now() + 5_000;
  while (lines.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

describe('dubbo call log processors', () => {
  it('are held while a route object has sessions and released (flushed) by the last one', async () => {
    const log = new CallLog(silentLogger);
    const a = route('r1', 'conf-a');
    const first = log.acquire(a);
    expect(log.acquire(a)).toBe(first);
    expect(first).toHaveLength(1);
    log.log(first, call('m'));
    log.release(a);
    await tick();
    expect(log.size).toBe(1);
    expect(lines).toHaveLength(0);
    log.release(a);
    expect(log.size).toBe(0);
    await waitLines(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('"method":"m"');
    // The next session compiles again and gets a new processor: the old one was dropped.
    const again = log.acquire(a);
    expect(again[0]!.handle.processor).not.toBe(first[0]!.handle.processor);
    log.close();
    expect(log.size).toBe(0);
  });

  it('a route whose logger conf changed releases the old conf once its old sessions end', async () => {
    const log = new CallLog(silentLogger);
    const before = lines.length;
    const old = route('r2', 'conf-old');
    const oldLoggers = log.acquire(old);
    const updated = route('r2', 'conf-new');
    const newLoggers = log.acquire(updated);
    expect(newLoggers[0]!.handle.processor).not.toBe(oldLoggers[0]!.handle.processor);
    log.log(oldLoggers, call('m'));
    log.release(old);
    await waitLines(before + 1);
    expect(lines.length).toBe(before + 1);
    expect(log.size).toBe(1);
    log.release(updated);
    expect(log.size).toBe(0);
  });
});
