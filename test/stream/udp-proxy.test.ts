// UDP stream proxy end to end with a real dnsmasq: concurrent dig queries through the gateway each get their
// own answer; sessions expire when idle; the session table is bounded; ip-restriction applies to UDP too.
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dig, startDnsmasq, type Dnsmasq } from '../helpers/dnsmasq.ts';
import { freeTcpUdpPort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/proc.ts';
import { item, startProxy, type TestProxy } from './fixtures.ts';

const NAMES = 16;
let dns: Dnsmasq;
let proxy: TestProxy;
let port = 0;
let denyPort = 0;
let echoPort = 0;
let echo: dgram.Socket;

function udpExchange(target: number, payload: string): Promise<{ reply: string | null; local: number; close(): void }> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => resolve({ reply: null, local: s.address().port, close: () => s.close() }), 2000);
    s.once('message', (m) => {
      clearTimeout(timer);
      resolve({ reply: m.toString(), local: s.address().port, close: () => s.close() });
    });
    s.bind(0, '127.0.0.1', () => s.send(payload, target, '127.0.0.1'));
  });
}

beforeAll(async () => {
  const records: Record<string, string> = {};
  for (let i = 0; i < NAMES; i++) records[`n${i}.switchyard.test`] = `10.0.${i}.${i + 1}`;
  dns = await startDnsmasq({ records });
  echo = dgram.createSocket('udp4');
  echo.on('message', (m, r) => echo.send(`echo:${m.toString()}`, r.port, r.address));
  await new Promise<void>((r) => echo.bind(0, '127.0.0.1', () => r()));
  echoPort = echo.address().port;
  [port, denyPort] = [await freeTcpUdpPort(), await freeTcpUdpPort()];
  const echoListen = await freeTcpUdpPort();
  proxy = await startProxy({
    items: [
      item('stream_routes', 'dns', { server_port: port, upstream: { scheme: 'udp', nodes: { [`127.0.0.1:${dns.port}`]: 1 } } }),
      item('stream_routes', 'deny', {
        server_port: denyPort,
        plugins: { 'ip-restriction': { blacklist: ['127.0.0.1'] } },
        upstream: { scheme: 'udp', nodes: { [`127.0.0.1:${dns.port}`]: 1 } },
      }),
      item('stream_routes', 'echo', { server_port: echoListen, upstream: { scheme: 'udp', nodes: { [`127.0.0.1:${echoPort}`]: 1 } } }),
    ],
    udp: [{ addr: `127.0.0.1:${port}` }, { addr: `127.0.0.1:${denyPort}` }, { addr: `127.0.0.1:${echoListen}` }],
    timeouts: { udpIdleMs: 300 },
    udpOptions: { maxSessions: 64 },
  });
  echoPort = echoListen;
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  echo?.close();
  await dns?.stop();
});

describe('UDP stream proxy', () => {
  it('answers concurrent dig queries through the gateway, each with its own records', async () => {
    const answers = await Promise.all(Array.from({ length: NAMES }, (_, i) => dig('127.0.0.1', port, `n${i}.switchyard.test`)));
    for (let i = 0; i < NAMES; i++) expect(answers[i]).toEqual([`10.0.${i}.${i + 1}`]);
  });

  it('routes replies back to the right client when many clients talk at once', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => udpExchange(echoPort, `c${i}`)));
    results.forEach((r, i) => expect(r.reply).toBe(`echo:c${i}`));
    for (const r of results) r.close();
  });

  it('expires idle sessions', async () => {
    const r = await udpExchange(echoPort, 'idle');
    expect(r.reply).toBe('echo:idle');
    r.close();
    await waitFor(() => proxy.listeners.activeSessions() === 0, 5000, 50);
  });

  it('applies stream ip-restriction to UDP sessions', async () => {
    expect(await dig('127.0.0.1', denyPort, 'n1.switchyard.test', ['+tries=1', '+time=1'])).toEqual([]);
  });
});

describe('UDP session table bound', () => {
  it('evicts the least recently active session when full', async () => {
    const p = await freeTcpUdpPort();
    const small = await startProxy({
      items: [item('stream_routes', 'echo', { upstream: { scheme: 'udp', nodes: { [`127.0.0.1:${echo.address().port}`]: 1 } } })],
      udp: [{ addr: `127.0.0.1:${p}` }],
      udpOptions: { maxSessions: 3 },
    });
    try {
      const clients = [];
      for (let i = 0; i < 5; i++) {
        const r = await udpExchange(p, `e${i}`);
        expect(r.reply).toBe(`echo:e${i}`);
        clients.push(r);
      }
      expect(small.listeners.activeSessions()).toBe(3);
      for (const c of clients) c.close();
    } finally {
      await small.close();
    }
  });
});
