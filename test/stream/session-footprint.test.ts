// What one proxied MQTT session keeps on its two gateway sockets while it idles (issue 19: idle sessions are
// counted by the ten thousand). A real mqtt.js client connects through an mqtt-proxy route (chash on
// mqtt_client_id) to mosquitto; the gateway's own sockets are found through node's net diagnostics channels.
// Every event keeps one listener, a function: a second listener on an event turns the socket's entry into
// an array with its backing store. The HTTP connection statistics (src/observability/http-stats.ts) run as
// in the gateway and must not add a 'close' listener to stream sockets. Both sockets still leave the live
// set once the session ends.
import diagnostics_channel from 'node:diagnostics_channel';
import type net from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpStats } from '../../src/observability/http-stats.ts';
import { StreamSession } from '../../protocols/stream/session.ts';
import { freePort } from '../helpers/ports.ts';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.ts';
import { waitFor } from '../helpers/proc.ts';
import { item, startProxy, type TestProxy } from './fixtures.ts';

let broker: Mosquitto;
let proxy: TestProxy;
let port = 0;
const accepted: net.Socket[] = [];
const dialed: net.Socket[] = [];

function onAccepted(msg: unknown): void {
  const s = (msg as { socket: net.Socket }).socket;
  if (s.localPort === port) accepted.push(s);
}

function onDialed(msg: unknown): void {
  dialed.push((msg as { socket: net.Socket }).socket);
}

beforeAll(async () => {
  broker = await startMosquitto();
  port = await freePort();
  httpStats.start();
  diagnostics_channel.subscribe('net.server.socket', onAccepted);
  diagnostics_channel.subscribe('net.client.socket', onDialed);
  proxy = await startProxy({
    items: [
      item('stream_routes', 'mqtt', {
        server_port: port,
        plugins: { 'mqtt-proxy': { protocol_level: 4 } },
        upstream: { type: 'chash', key: 'mqtt_client_id', nodes: { [`127.0.0.1:${broker.port}`]: 1 } },
      }),
    ],
    tcp: [{ addr: `127.0.0.1:${port}`, tls: false }],
  });
}, 60_000);

afterAll(async () => {
  diagnostics_channel.unsubscribe('net.server.socket', onAccepted);
  diagnostics_channel.unsubscribe('net.client.socket', onDialed);
  await proxy?.close();
  await broker?.stop();
});

function connectClient(clientId: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect({ host: '127.0.0.1', port, clientId, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

const EVENTS = ['close', 'error', 'data', 'end', 'drain', 'connect', 'finish'] as const;

function listenerCounts(s: net.Socket): Record<string, number> {
  return Object.fromEntries(EVENTS.map((e) => [e, s.listenerCount(e)]));
}

describe('an idle proxied MQTT session', () => {
  it('keeps at most one listener per event on both gateway sockets, and leaves the live set when it ends', async () => {
    const before = dialed.length;
    const client = await connectClient('footprint-1');
    const down = accepted.at(-1)!;
    const up = dialed.slice(before).find((s) => s.remotePort === broker.port);
    expect(down).toBeDefined();
    expect(up).toBeDefined();
    // The session works: a message goes through the gateway and back from the broker.
    await client.subscribeAsync('fp/t', { qos: 1 });
    const echoed = new Promise<string>((resolve) => client.once('message', (_t, m: Buffer) => resolve(m.toString())));
    await client.publishAsync('fp/t', 'hello', { qos: 1 });
    expect(await echoed).toBe('hello');

    const forwarding = { close: 1, error: 1, data: 1, end: 1, drain: 1, connect: 0, finish: 0 };
    expect(listenerCounts(down)).toEqual(forwarding);
    // The upstream socket reads through onread (no 'data' listener).
    expect(listenerCounts(up!)).toEqual({ ...forwarding, data: 0 });
    expect(proxy.listeners.activeSessions()).toBe(2);

    await client.endAsync();
    await waitFor(() => proxy.listeners.activeSessions() === 0, 5000, 10);
    expect(down.destroyed && up!.destroyed).toBe(true);
  });
});

describe('StreamSession variables', () => {
  it('keeps plugin variables apart from the named ones, overwrites and reads each back', () => {
    const s = new StreamSession({
      protocol: 'tcp',
      remoteAddr: '10.0.0.1',
      remotePort: 4000,
      serverAddr: '10.0.0.2',
      serverPort: 1883,
      buffer: { peeked: () => Buffer.alloc(0) },
      peekTimeoutMs: 1000,
    });
    const v = s.vars;
    expect(v.get('mqtt_client_id')).toBeUndefined();
    v.set('mqtt_client_id', 'a');
    v.set('mqtt_username', 'u');
    v.set('third', 3);
    v.set('mqtt_client_id', 'b');
    v.set('third', 4);
    expect([v.get('mqtt_client_id'), v.get('mqtt_username'), v.get('third'), v.get('remote_addr'), v.get('server_port')]).toEqual(['b', 'u', 4, '10.0.0.1', 1883]);
  });

  it('derives startNs and session_time from the start on the monotonic clock', async () => {
    const t0 = process.hrtime.bigint();
    const s = new StreamSession({
      protocol: 'tcp',
      remoteAddr: '10.0.0.1',
      remotePort: 4000,
      serverAddr: '10.0.0.2',
      serverPort: 1883,
      buffer: { peeked: () => Buffer.alloc(0) },
      peekTimeoutMs: 1000,
    });
    const t1 = process.hrtime.bigint();
    // Whole milliseconds: the start may read up to 1 ms before the call.
    expect(s.startNs).toBeGreaterThanOrEqual(t0 - 1_000_000n);
    expect(s.startNs).toBeLessThanOrEqual(t1 + 1_000_000n);
    await new Promise((r) => setTimeout(r, 30));
    // session_time first, then the elapsed time that bounds it (read the other way round, a descheduling
    // between the two reads made session_time exceed the bound in a CI run).
    const t = s.vars.get('session_time') as number;
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    expect(t).toBeGreaterThanOrEqual(0.025);
    expect(t).toBeLessThanOrEqual(elapsed + 0.002);
  });
});
