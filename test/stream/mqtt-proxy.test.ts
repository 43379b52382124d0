// mqtt-proxy end to end: three real mosquitto brokers behind one stream route, chash on mqtt_client_id.
// Which broker a client landed on is observed on the broker side, by a direct subscriber per broker.
import { execFile } from 'node:child_process';
import net from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.ts';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.ts';
import { waitFor } from '../helpers/proc.ts';
import { item, startProxy, type TestProxy } from './fixtures.ts';

let brokers: Mosquitto[] = [];
let watchers: MqttClient[] = [];
/** Messages seen per broker: topic list. */
const seen: string[][] = [[], [], []];
let proxy: TestProxy;
let port4 = 0;
let port5 = 0;
let portSink = 0;
let sink: net.Server;
let sinkConnections = 0;

function connectClient(port: number, clientId: string, protocolVersion: 4 | 5 = 4): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect({ host: '127.0.0.1', port, clientId, protocolVersion, reconnectPeriod: 0, connectTimeout: 5000 });
    c.once('connect', () => resolve(c));
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

async function publishThrough(port: number, clientId: string, topic: string, protocolVersion: 4 | 5 = 4): Promise<void> {
  const c = await connectClient(port, clientId, protocolVersion);
  await c.publishAsync(topic, 'x', { qos: 1 });
  await c.endAsync();
}

/** Index of the broker whose watcher saw `topic`. */
async function landedOn(topic: string): Promise<number> {
  return await waitFor(() => {
    const i = seen.findIndex((s) => s.includes(topic));
    return i >= 0 ? i + 1 : 0;
  }, 5000, 10).then((v) => v - 1);
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 15_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

/** Connects a raw socket, writes `chunks` (optionally one byte at a time), returns what came back until close. */
function rawSession(port: number, data: Buffer, byteByByte: boolean): Promise<{ received: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ received: Buffer.concat(got), closed });
    };
    const timer = setTimeout(() => finish(false), 5000);
    s.on('data', (d) => {
      got.push(d);
      if (!byteByByte || got.length > 0) finish(false);
    });
    s.on('close', () => finish(true));
    s.on('error', () => undefined);
    s.on('connect', async () => {
      if (!byteByByte) return void s.write(data);
      for (let i = 0; i < data.length && !done; i++) {
        s.write(data.subarray(i, i + 1));
        await new Promise((r) => setTimeout(r, 2));
      }
    });
  });
}

beforeAll(async () => {
  brokers = await Promise.all([startMosquitto(), startMosquitto(), startMosquitto()]);
  watchers = await Promise.all(
    brokers.map(async (b, i) => {
      const w = await connectClient(b.port, `watcher-${i}`);
      await w.subscribeAsync('t/#', { qos: 1 });
      w.on('message', (topic) => seen[i]!.push(topic));
      return w;
    }),
  );
  sink = net.createServer((s) => {
    sinkConnections++;
    s.destroy();
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));
  [port4, port5, portSink] = await Promise.all([freePort(), freePort(), freePort()]);
  const nodes = Object.fromEntries(brokers.map((b) => [`127.0.0.1:${b.port}`, 1]));
  const upstream = { type: 'chash', key: 'mqtt_client_id', nodes };
  proxy = await startProxy({
    items: [
      item('upstreams', 'brokers', upstream),
      item('stream_routes', 'mqtt4', { server_port: port4, upstream_id: 'brokers', plugins: { 'mqtt-proxy': { protocol_level: 4 } } }),
      item('stream_routes', 'mqtt5', { server_port: port5, upstream_id: 'brokers', plugins: { 'mqtt-proxy': { protocol_level: 5 } } }),
      item('stream_routes', 'sink', {
        server_port: portSink,
        plugins: { 'mqtt-proxy': { protocol_level: 4 } },
        upstream: { nodes: { [`127.0.0.1:${(sink.address() as net.AddressInfo).port}`]: 1 } },
      }),
    ],
    tcp: [port4, port5, portSink].map((p) => ({ addr: `127.0.0.1:${p}`, tls: false })),
  });
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  await Promise.all(watchers.map((w) => w.endAsync(true)));
  await Promise.all(brokers.map((b) => b.stop()));
  sink?.close();
});

describe('mqtt-proxy with chash on mqtt_client_id', () => {
  it('keeps one client id on the same broker across connections (mqtt.js)', async () => {
    const first = await (async () => {
      await publishThrough(port4, 'sticky-client', 't/sticky/0');
      return landedOn('t/sticky/0');
    })();
    for (let i = 1; i <= 4; i++) {
      await publishThrough(port4, 'sticky-client', `t/sticky/${i}`);
      expect(await landedOn(`t/sticky/${i}`)).toBe(first);
    }
  });

  it('spreads many client ids over all three brokers', async () => {
    const used = new Set<number>();
    for (let i = 0; i < 30 && used.size < 3; i++) {
      await publishThrough(port4, `spread-${i}`, `t/spread/${i}`);
      used.add(await landedOn(`t/spread/${i}`));
    }
    expect(used.size).toBe(3);
  });

  it('works with mosquitto_pub and mosquitto_sub through the gateway', async () => {
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port4), '-i', 'cli-pub', '-q', '1', '-t', 't/cli/pub', '-m', 'hi']);
    const broker = await landedOn('t/cli/pub');
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port4), '-i', 'cli-pub', '-q', '1', '-t', 't/cli/pub2', '-m', 'hi']);
    expect(await landedOn('t/cli/pub2')).toBe(broker);

    const sub = run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port4), '-i', 'cli-sub', '-t', 'cli/down', '-C', '1', '-W', '10']);
    // The subscriber sits on one broker; publish directly to every broker until it receives one.
    let out: string | undefined;
    sub.then((v) => (out = v)).catch(() => undefined);
    await waitFor(async () => {
      for (const w of watchers) await w.publishAsync('cli/down', 'through-the-gateway', { qos: 0 });
      return out !== undefined;
    }, 10_000, 200);
    expect(out!.trim()).toBe('through-the-gateway');
  });

  it('proxies MQTT 5 on a protocol_level 5 route (mqtt.js and mosquitto_pub -V mqttv5)', async () => {
    await publishThrough(port5, 'v5-client', 't/v5/0', 5);
    const b = await landedOn('t/v5/0');
    await run('mosquitto_pub', ['-V', 'mqttv5', '-h', '127.0.0.1', '-p', String(port5), '-i', 'v5-client', '-q', '1', '-t', 't/v5/1', '-m', 'hi']);
    expect(await landedOn('t/v5/1')).toBe(b);
  });

  it('closes a level mismatch (v5 client on the level 4 route) without a CONNACK', async () => {
    await expect(connectClient(port4, 'wrong-level', 5)).rejects.toThrow();
  });

  it('closes a garbage first packet with nothing forwarded upstream', async () => {
    const before = sinkConnections;
    const r = await rawSession(portSink, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), false);
    expect(r.closed).toBe(true);
    expect(r.received.length).toBe(0);
    const bad = await rawSession(portSink, Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]), false);
    expect(bad.closed).toBe(true);
    expect(sinkConnections).toBe(before);
  });

  it('accepts a CONNECT delivered one byte at a time', async () => {
    const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'slow-client', clean: true, keepalive: 30 });
    const r = await rawSession(port4, connect, true);
    expect(r.received[0]).toBe(0x20); // CONNACK
    expect(r.received[3]).toBe(0); // accepted
  });
});
