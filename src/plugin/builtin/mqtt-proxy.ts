// mqtt-proxy (APISIX stream plugin, priority 1000). In preread it waits for the client's first packet
// (bounded in size and time), which must be a CONNECT whose protocol name and level match the conf. The
// bytes are only peeked: they are forwarded to the broker unchanged afterwards. A non-empty client id is
// exposed as the variable `mqtt_client_id` (chash key for sticky brokers; an empty id leaves it unset so
// chash falls back to remote_addr), the user name as `mqtt_username`. Any failure closes the session
// before anything is forwarded.
import mqttPacket from 'mqtt-packet';
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import type { StreamContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    protocol_name: { type: 'string', default: 'MQTT' },
    protocol_level: { type: 'integer' },
  },
  required: ['protocol_level'],
};

/** Largest first packet accepted (CONNECT with will message, properties and credentials fits easily). */
export const MQTT_MAX_CONNECT_BYTES = 64 * 1024;
/** Time the client has to deliver its complete CONNECT. */
export const MQTT_CONNECT_TIMEOUT_MS = 10_000;

const REJECT: PluginResponse = { status: 503 };

export type ConnectParse =
  | { readonly ok: true; readonly clientId: string; readonly username: string | undefined; readonly name: string; readonly level: number }
  | { readonly ok: false; readonly reason: string };

/**
 * Length of the first MQTT packet from its fixed header: `need` more bytes to decide, or the total size, or
 * an error (first byte must be a CONNECT: 0x10; APISIX accepts 0x10..0x20 then fails the parse).
 */
export function firstPacketLength(buf: Buffer): { need: number } | { total: number } | { error: string } {
  if (buf.length < 2) return { need: 2 };
  const type = buf[0]!;
  if (type < 0x10 || type > 0x20) return { error: `unexpected MQTT packet type+flags: ${type}` };
  let len = 0;
  let mult = 1;
  for (let i = 1; i <= 4; i++) {
    if (i >= buf.length) return { need: i + 1 };
    const b = buf[i]!;
    len += (b & 0x7f) * mult;
    mult *= 128;
    if ((b & 0x80) === 0) return { total: i + 1 + len };
  }
  return { error: 'malformed remaining length' };
}

/** The parser's last event during one parse() call: later packets or errors win, as they did per call. */
let lastEvent: mqttPacket.Packet | Error | null = null;
let packets = 0;

function onPacket(p: mqttPacket.Packet): void {
  packets++;
  lastEvent = p;
}

function onParseError(err: Error): void {
  lastEvent = err;
}

/** Reads and clears the last event (a call, so the compiler does not assume parse() left it null). */
function takeEvent(): mqttPacket.Packet | Error | null {
  const ev = lastEvent;
  lastEvent = null;
  return ev;
}

function newParser(): mqttPacket.Parser {
  const p = mqttPacket.parser();
  p.on('packet', onPacket);
  p.on('error', onParseError);
  return p;
}

/**
 * One parser shared by every session: parse() runs synchronously, so sessions never interleave on it, and a
 * parser per CONNECT (an EventEmitter, a buffer list, two listener closures) was garbage that the old
 * generation held on to while thousands of clients connected. A parse that did not consume exactly one
 * whole packet leaves state behind, so the next CONNECT gets a fresh parser.
 */
let parser = newParser();

/** Parses a complete CONNECT packet with mqtt-packet (v3.1, v3.1.1, v5 auto-detected). */
export function parseConnect(packet: Buffer): ConnectParse {
  lastEvent = null;
  packets = 0;
  let left = -1;
  let ev: mqttPacket.Packet | Error | null = null;
  try {
    left = parser.parse(packet);
  } finally {
    ev = takeEvent();
    if (left !== 0 || packets !== 1 || ev instanceof Error) parser = newParser();
  }
  if (ev === null) return { ok: false, reason: 'incomplete packet' };
  if (ev instanceof Error) return { ok: false, reason: ev.message };
  if (ev.cmd !== 'connect') return { ok: false, reason: `first packet is ${ev.cmd}, not connect` };
  return { ok: true, clientId: ev.clientId ?? '', username: ev.username, name: ev.protocolId ?? 'MQTT', level: ev.protocolVersion ?? 4 };
}

class MqttProxy implements PluginInstance {
  private readonly name: string;
  private readonly level: number;
  private readonly logger: Logger;

  constructor(conf: JsonObject, logger: Logger) {
    this.name = typeof conf.protocol_name === 'string' ? conf.protocol_name : 'MQTT';
    this.level = conf.protocol_level as number;
    this.logger = logger;
  }

  async preread(ctx: StreamContext): Promise<PhaseResult> {
    const deadline = Date.now() + MQTT_CONNECT_TIMEOUT_MS;
    let want = 2;
    let total = -1;
    // At most 5 rounds: 2 bytes, up to 3 more remaining-length bytes, then the whole packet.
    for (let round = 0; round < 6 && total < 0; round++) {
      const buf = await this.peekBy(ctx, want, deadline);
      const r = firstPacketLength(buf);
      if ('error' in r) return this.reject(ctx, r.error);
      if ('total' in r) total = r.total;
      else if (buf.length < r.need) return this.reject(ctx, 'client closed or timed out before the packet header');
      else want = r.need;
    }
    if (total < 0) return this.reject(ctx, 'malformed packet header');
    if (total > MQTT_MAX_CONNECT_BYTES) return this.reject(ctx, `CONNECT of ${total} bytes exceeds the limit`);
    const buf = await this.peekBy(ctx, total, deadline);
    if (buf.length < total) return this.reject(ctx, `expected ${total} bytes of CONNECT, got ${buf.length}`);
    const parsed = parseConnect(buf.subarray(0, total));
    if (!parsed.ok) return this.reject(ctx, parsed.reason);
    if (parsed.name !== this.name) return this.reject(ctx, `expected protocol name ${this.name}, got ${parsed.name}`);
    if (parsed.level !== this.level) return this.reject(ctx, `expected protocol level ${this.level}, got ${parsed.level}`);
    if (parsed.clientId !== '') ctx.vars.set('mqtt_client_id', parsed.clientId);
    if (parsed.username !== undefined) ctx.vars.set('mqtt_username', parsed.username);
    return undefined;
  }

  /** ctx.peek bounded by the CONNECT deadline; resolves with what is buffered when time runs out. */
  private async peekBy(ctx: StreamContext, n: number, deadline: number): Promise<Buffer> {
    // The usual CONNECT arrives in one segment: the later peeks are already satisfied, no timer needed.
    const have = ctx.peeked();
    if (have.length >= n) return have;
    const left = deadline - Date.now();
    if (left <= 0) return ctx.peeked();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Buffer>((resolve) => {
      timer = setTimeout(() => resolve(ctx.peeked()), left);
    });
    try {
      return await Promise.race([ctx.peek(n), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private reject(ctx: StreamContext, reason: string): PluginResponse {
    this.logger.warn({ route: ctx.routeId, remote: ctx.remoteAddr, reason }, 'mqtt-proxy: rejecting session');
    return REJECT;
  }
}

export const mqttProxyPlugin: PluginDef = {
  name: 'mqtt-proxy',
  version: '0.1',
  priority: 1000,
  schema,
  subsystems: ['stream'],
  status: 'stable',
  create(conf, env) {
    return new MqttProxy(conf, env.logger);
  },
};

export default mqttProxyPlugin;
