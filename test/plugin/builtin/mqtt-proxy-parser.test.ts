// mqtt-proxy parses every CONNECT on one shared mqtt-packet parser (no parser per session): whatever a
// previous client sent (garbage, half a packet, two packets, a v5 CONNECT with properties), the next
// CONNECT parses to exactly its own fields.
import mqttPacket from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { parseConnect } from '../../../src/plugin/builtin/mqtt-proxy.ts';

const connect = (v: 3 | 4 | 5, clientId: string, extra: Record<string, unknown> = {}) =>
  mqttPacket.generate({ cmd: 'connect', protocolId: v === 3 ? 'MQIsdp' : 'MQTT', protocolVersion: v, clientId, clean: true, keepalive: 10, ...extra } as never);

describe('mqtt-proxy CONNECT parser reuse', () => {
  const v5 = connect(5, 'v5-client', { username: 'five', properties: { sessionExpiryInterval: 30, userProperties: { a: 'b' } }, will: { topic: 'w', payload: Buffer.from('x') } });
  const leftovers: [string, Buffer][] = [
    ['garbage', Buffer.from([0xff, 0x00, 0x13, 0x37])],
    ['half a CONNECT', connect(4, 'half').subarray(0, 9)],
    ['a fixed header promising more', Buffer.from([0x10, 0x7f])],
    ['CONNECT then half a PUBLISH', Buffer.concat([connect(4, 'first'), Buffer.from([0x30, 0x0a, 0x00])])],
    ['a PINGREQ', mqttPacket.generate({ cmd: 'pingreq' })],
    ['a v5 CONNECT with properties', v5],
  ];

  for (const [what, before] of leftovers) {
    it(`parses the next CONNECT on its own after ${what}`, () => {
      parseConnect(before);
      expect(parseConnect(connect(4, 'next', { username: 'u' }))).toEqual({ ok: true, clientId: 'next', username: 'u', name: 'MQTT', level: 4 });
      expect(parseConnect(connect(3, 'old'))).toEqual({ ok: true, clientId: 'old', username: undefined, name: 'MQIsdp', level: 3 });
      expect(parseConnect(v5)).toEqual({ ok: true, clientId: 'v5-client', username: 'five', name: 'MQTT', level: 5 });
    });
  }

  it('still reports what went wrong in the bad packets themselves', () => {
    expect(parseConnect(mqttPacket.generate({ cmd: 'pingreq' }))).toMatchObject({ ok: false, reason: expect.stringMatching(/pingreq/) });
    expect(parseConnect(Buffer.from([0x10, 0x7f]))).toEqual({ ok: false, reason: 'incomplete packet' });
    expect(parseConnect(Buffer.from([0x10, 0x02, 0x00, 0x00]))).toMatchObject({ ok: false });
  });
});
