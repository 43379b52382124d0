// `$env://` and `$secret://` references in stream route plugin confs, resolved as HTTP route confs resolve them
// (src/plugin/secret-refs.ts): mqtt-proxy's protocol_name comes from the environment or from a Vault KV v2 value
// (test/helpers/vault-kv.ts, a small HTTP receiver speaking Vault's read API; no real Vault runs here), and a
// real MQTT client (mqtt.js) through the gateway to a real mosquitto broker gets its CONNACK only when the resolved
// name is its own. An unresolvable reference fails closed as on HTTP (the plugin answers 500: the session is
// closed, the broker sees nothing), and a changed secrets object is read again and rebuilds the stream runtime.
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildSnapshot } from '../../src/config/snapshot.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { StreamRuntimeBuilder } from '../../stream-routes/runtime.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { item, registries } from '../helpers/items.ts';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.ts';
import { freePort } from '../helpers/ports.ts';
import { startVaultKv, type VaultKv } from '../helpers/vault-kv.ts';

const ENV_NAME = `SWY_TEST_STREAM_MQTT_NAME_${process.pid}`;
let gw: TestGateway;
let broker: Mosquitto;
let kv: VaultKv;
/** Stream listener ports: protocol_name from $env, from an unset $env, from Vault. */
let envPort = 0;
let unsetPort = 0;
let vaultPort = 0;

beforeAll(async () => {
  process.env[ENV_NAME] = 'MQTT';
  [broker, kv] = await Promise.all([startMosquitto(), startVaultKv(['tok'])]);
  kv.data.set('apisix/mqtt', { name: 'MQTT' });
  envPort = await freePort();
  unsetPort = await freePort();
  vaultPort = await freePort();
  gw = await startTestGateway({
    config: { apisix: { proxy_mode: 'http&stream', stream_proxy: { tcp: [envPort, unsetPort, vaultPort].map((p) => `127.0.0.1:${p}`) } } },
  });
  const upstream = { nodes: { [`127.0.0.1:${broker.port}`]: 1 } };
  await gw.put('/secrets/vault/1', { uri: kv.url, prefix: 'kv/data/apisix', token: 'tok' });
  await gw.put('/stream_routes/env', { server_port: envPort, plugins: { 'mqtt-proxy': { protocol_name: `$env://${ENV_NAME}`, protocol_level: 4 } }, upstream });
  await gw.put('/stream_routes/unset', {
    server_port: unsetPort,
    plugins: { 'mqtt-proxy': { protocol_name: '$env://SWY_TEST_NOT_SET_ANYWHERE', protocol_level: 4 } },
    upstream,
  });
  await gw.put('/stream_routes/vault', { server_port: vaultPort, plugins: { 'mqtt-proxy': { protocol_name: '$secret://vault/1/mqtt/name', protocol_level: 4 } }, upstream });
}, 60_000);

afterAll(async () => {
  delete process.env[ENV_NAME];
  await gw?.close();
  await Promise.all([broker?.stop(), kv?.close()]);
});

/** An MQTT 3.1.1 client (protocol name "MQTT", level 4): 'connack' when the broker answered through the gateway. */
function mqttConnect(port: number): Promise<'connack' | 'closed'> {
  return new Promise((resolve) => {
    const c = mqtt.connect({ host: '127.0.0.1', port, clientId: `c-${port}`, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000 });
    c.once('connect', () => {
      c.end(true);
      resolve('connack');
    });
    c.once('error', () => undefined);
    c.once('close', () => {
      c.end(true);
      resolve('closed');
    });
  });
}

describe('secret references in stream plugin confs', () => {
  test('an $env:// reference is resolved: the client whose protocol name it holds is proxied', async () => {
    expect(await mqttConnect(envPort)).toBe('connack');
    const stored = await gw.admin('GET', '/stream_routes/env');
    expect(stored.body.value.plugins['mqtt-proxy'].protocol_name).toBe(`$env://${ENV_NAME}`);
  });

  test('an unresolvable reference fails closed: the session is closed before the broker', async () => {
    expect(await mqttConnect(unsetPort)).toBe('closed');
  });

  test('a $secret://vault reference is fetched before the route serves, and read again when the secrets object changes', async () => {
    expect(await mqttConnect(vaultPort)).toBe('connack');
    const reads = kv.seen.length;
    // Cached: another session reads nothing from Vault.
    expect(await mqttConnect(vaultPort)).toBe('connack');
    expect(kv.seen.length).toBe(reads);
    // The value changes in Vault; a PUT of the secrets object (same body) is what makes the gateway read it again.
    kv.data.set('apisix/mqtt', { name: 'MQIsdp' });
    await gw.put('/secrets/vault/1', { uri: kv.url, prefix: 'kv/data/apisix', token: 'tok' });
    expect(kv.seen.length).toBeGreaterThan(reads);
    expect(await mqttConnect(vaultPort)).toBe('closed');
    // The $env route is untouched by the secrets change.
    expect(await mqttConnect(envPort)).toBe('connack');
  });
});

describe('stream runtime rebuilds on a secrets change', () => {
  test('only when a stream conf names a secret manager', () => {
    const { plugins, balancers } = registries();
    const builder = new StreamRuntimeBuilder({ plugins, balancers, logger: silentLogger });
    const upstream = { nodes: { '127.0.0.1:1883': 1 }, type: 'roundrobin' };
    const plain = item('stream_routes', 'p', { server_port: 1, plugins: { 'mqtt-proxy': { protocol_level: 4 } }, upstream });
    const envRef = item('stream_routes', 'e', { server_port: 2, plugins: { 'mqtt-proxy': { protocol_name: '$env://PATH', protocol_level: 4 } }, upstream });
    const vaultRef = item('stream_routes', 'v', { server_port: 3, plugins: { 'mqtt-proxy': { protocol_name: '$secret://vault/1/mqtt/name', protocol_level: 4 } }, upstream });
    const secret = (token: string) => item('secrets', 'vault/1', { uri: 'http://127.0.0.1:1', prefix: 'kv/data/apisix', token });
    const routes = [plain, envRef];
    let snap = buildSnapshot([...routes, secret('a')], 1, { plugins });
    const first = builder.build(snap, null);
    snap = buildSnapshot([...routes, secret('b')], 2, { plugins, previous: snap });
    expect(builder.build(snap, first)).toBe(first);
    // A route change is a rebuild as before.
    const withVault = [...routes, vaultRef];
    snap = buildSnapshot([...withVault, secret('b')], 3, { plugins, previous: snap });
    const second = builder.build(snap, first);
    expect(second).not.toBe(first);
    snap = buildSnapshot([...withVault, secret('c')], 4, { plugins, previous: snap });
    expect(builder.build(snap, second)).not.toBe(second);
    builder.close();
  });
});
