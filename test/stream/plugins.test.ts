// ip-restriction, limit-conn and mqtt-proxy as plugin units (both subsystems); the end-to-end stream behaviour
// is covered by tcp-proxy, udp-proxy and mqtt-proxy tests.
import mqttPacket from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/observability/logger.ts';
import { ipRestrictionPlugin } from '../../src/plugin/builtin/ip-restriction.ts';
import { limitConnPlugin, limitConnTrackedKeys } from '../../src/plugin/builtin/limit-conn.ts';
import { firstPacketLength, mqttProxyPlugin, parseConnect } from '../../src/plugin/builtin/mqtt-proxy.ts';
import type { HttpContext, StreamContext } from '../../src/plugin/context.ts';
import type { PluginEnv } from '../../src/plugin/plugin.ts';
import { MapVars } from '../../src/router/vars.ts';

let scope = 0;
const env = (): PluginEnv => ({
  logger: silentLogger,
  metadata: undefined,
  attr: undefined,
  scopeKey: `test-${++scope}`,
  consumers: { find: () => undefined, withPlugin: () => [] },
});

function httpCtx(remoteAddr: string, vars: Record<string, string> = {}): HttpContext {
  return {
    vars: new MapVars({ remote_addr: remoteAddr, ...vars }),
    request: { remoteAddr },
    pluginData: new Map(),
    startNs: process.hrtime.bigint(),
  } as unknown as HttpContext;
}

function streamCtx(remoteAddr: string, data: Buffer = Buffer.alloc(0)): StreamContext {
  return {
    vars: new MapVars({ remote_addr: remoteAddr }),
    remoteAddr,
    routeId: 'r1',
    pluginData: new Map(),
    peek: async () => data,
    peeked: () => data,
  } as unknown as StreamContext;
}

describe('ip-restriction', () => {
  it('has the APISIX name, priority and both subsystems', () => {
    expect(ipRestrictionPlugin).toMatchObject({ name: 'ip-restriction', priority: 3000, subsystems: ['http', 'stream'] });
  });

  it('answers 403 {"message": "Your IP address is not allowed"} by default (HTTP), closes streams', () => {
    const p = ipRestrictionPlugin.create({ whitelist: ['10.0.0.0/8', '::1'] }, env());
    expect(p.access!(httpCtx('10.2.3.4'))).toBeUndefined();
    expect(p.access!(httpCtx('::1'))).toBeUndefined();
    expect(p.access!(httpCtx('192.168.1.1'))).toEqual({ status: 403, body: { message: 'Your IP address is not allowed' } });
    expect(p.preread!(streamCtx('192.168.1.1'))).toMatchObject({ status: 403 });
    const deny = ipRestrictionPlugin.create({ blacklist: ['192.168.0.0/16'], message: 'go away', response_code: 404 }, env());
    expect(deny.access!(httpCtx('192.168.9.9'))).toEqual({ status: 404, body: { message: 'go away' } });
    expect(deny.access!(httpCtx('10.0.0.1'))).toBeUndefined();
  });

  it('rejects invalid addresses in check()', () => {
    expect(ipRestrictionPlugin.check!({ whitelist: ['10.0.0.0/33'] }, 'route')).toMatch(/invalid ip address/);
    expect(ipRestrictionPlugin.check!({ blacklist: ['nope'] }, 'route')).toMatch(/invalid ip address/);
    expect(ipRestrictionPlugin.check!({ whitelist: ['2001:db8::/64', '1.2.3.4'] }, 'route')).toBeNull();
  });
});

describe('limit-conn', () => {
  const conf = { conn: 1, burst: 1, default_conn_delay: 0.02, key: 'remote_addr', key_type: 'var', rejected_code: 503, only_use_default_delay: true };

  it('admits conn, delays up to burst, rejects above (HTTP), and releases in log', async () => {
    const p = limitConnPlugin.create(conf, env());
    const a = httpCtx('1.1.1.1');
    const b = httpCtx('1.1.1.1');
    const c = httpCtx('1.1.1.1');
    expect(p.access!(a)).toBeUndefined();
    const delayed = p.access!(b);
    expect(delayed).toBeInstanceOf(Promise);
    expect(await delayed).toBeUndefined();
    expect(p.access!(c)).toEqual({ status: 503 });
    expect(p.access!(httpCtx('2.2.2.2'))).toBeUndefined();
    p.log!(a);
    p.log!(b);
    p.log!(c);
    const d = httpCtx('1.1.1.1');
    expect(p.access!(d)).toBeUndefined();
    p.log!(d);
  });

  it('counts stream sessions and frees keys when they end', () => {
    const before = limitConnTrackedKeys();
    const p = limitConnPlugin.create({ ...conf, burst: 0, rejected_msg: 'too many' }, env());
    const s1 = streamCtx('3.3.3.3');
    expect(p.preread!(s1)).toBeUndefined();
    expect(p.preread!(streamCtx('3.3.3.3'))).toEqual({ status: 503, body: { error_msg: 'too many' } });
    p.streamLog!(s1);
    expect(limitConnTrackedKeys()).toBe(before);
  });

  it('builds var_combination keys and falls back to remote_addr when none resolves', () => {
    const p = limitConnPlugin.create({ ...conf, burst: 0, key_type: 'var_combination', key: '$http_x_user ${route_id}' }, env());
    const a = httpCtx('4.4.4.4', { http_x_user: 'u1', route_id: 'r' });
    expect(p.access!(a)).toBeUndefined();
    expect(p.access!(httpCtx('5.5.5.5', { http_x_user: 'u1', route_id: 'r' }))).toEqual({ status: 503 });
    expect(p.access!(httpCtx('5.5.5.5', { http_x_user: 'u2', route_id: 'r' }))).toBeUndefined();
    const noKey = httpCtx('6.6.6.6');
    expect(p.access!(noKey)).toBeUndefined();
    expect(p.access!(httpCtx('6.6.6.6'))).toEqual({ status: 503 });
  });

  it('declares APISIX name, priority and both subsystems', () => {
    expect(limitConnPlugin).toMatchObject({ name: 'limit-conn', priority: 1003, subsystems: ['http', 'stream'] });
  });
});

describe('mqtt-proxy', () => {
  const connect = (v: 4 | 5, clientId: string, extra: Record<string, unknown> = {}) =>
    mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clientId, clean: true, keepalive: 10, ...extra } as never);

  it('parses v3.1.1 and v5 CONNECT packets (with properties, user name and will)', () => {
    expect(parseConnect(connect(4, 'c1', { username: 'bob' }))).toMatchObject({ ok: true, clientId: 'c1', username: 'bob', level: 4, name: 'MQTT' });
    const v5 = connect(5, 'c5', { properties: { sessionExpiryInterval: 30, userProperties: { a: 'b' } }, will: { topic: 'w', payload: Buffer.from('x') } });
    expect(parseConnect(v5)).toMatchObject({ ok: true, clientId: 'c5', level: 5 });
    expect(parseConnect(mqttPacket.generate({ cmd: 'pingreq' }))).toMatchObject({ ok: false });
  });

  it('computes the first packet length from the fixed header', () => {
    const p = connect(4, 'abc');
    expect(firstPacketLength(p.subarray(0, 1))).toEqual({ need: 2 });
    expect(firstPacketLength(p)).toEqual({ total: p.length });
    expect(firstPacketLength(Buffer.from([0x30, 0x00]))).toMatchObject({ error: expect.stringMatching(/unexpected MQTT packet/) });
    expect(firstPacketLength(Buffer.from([0x10, 0x80, 0x80]))).toEqual({ need: 4 });
  });

  it('sets mqtt_client_id only when non-empty, and rejects a level mismatch with 503', async () => {
    const p = mqttProxyPlugin.create({ protocol_name: 'MQTT', protocol_level: 4 }, env());
    const ok = streamCtx('1.1.1.1', connect(4, 'dev-1', { username: 'u' }));
    expect(await p.preread!(ok)).toBeUndefined();
    expect(ok.vars.get('mqtt_client_id')).toBe('dev-1');
    expect(ok.vars.get('mqtt_username')).toBe('u');
    const empty = streamCtx('1.1.1.1', connect(4, ''));
    expect(await p.preread!(empty)).toBeUndefined();
    expect(empty.vars.get('mqtt_client_id')).toBeUndefined();
    expect(await p.preread!(streamCtx('1.1.1.1', connect(5, 'x')))).toEqual({ status: 503 });
    expect(await p.preread!(streamCtx('1.1.1.1', connect(4, 'x').subarray(0, 8)))).toEqual({ status: 503 });
  });
});
