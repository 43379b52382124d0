// The per-session context stream plugins see (StreamContext) and the variables it exposes (MutableVars).
// APISIX stream variables: remote_addr, remote_port, server_addr, server_port, server_name / ssl_server_name
// (SNI), protocol, route_id, route_name, service_id, upstream_addr, bytes_received, bytes_sent, status,
// session_time, plus what plugins set (mqtt_client_id, mqtt_username, ...).
import type { JsonObject } from '../../src/config/resources.ts';
import type { MutableVars, StreamContext } from '../../src/plugin/context.ts';
import type { VarValue } from '../../src/router/vars.ts';
import type { Prebuffer } from './prebuffer.ts';

type Resolver = (s: StreamSession) => VarValue;

const NAMED = new Map<string, Resolver>([
  ['remote_addr', (s) => s.remoteAddr],
  ['remote_port', (s) => s.remotePort],
  ['server_addr', (s) => s.serverAddr],
  ['server_port', (s) => s.serverPort],
  ['server_name', (s) => s.sni],
  ['ssl_server_name', (s) => s.sni],
  ['protocol', (s) => (s.protocol === 'tcp' ? 'TCP' : 'UDP')],
  ['route_id', (s) => s.routeId || undefined],
  ['route_name', (s) => s.routeName],
  ['service_id', (s) => s.serviceId],
  ['upstream_addr', (s) => s.upstreamAddr],
  ['bytes_received', (s) => s.bytesIn],
  ['bytes_sent', (s) => s.bytesOut],
  ['status', (s) => s.status],
  ['session_time', (s) => Number(process.hrtime.bigint() - s.startNs) / 1e9],
]);

class SessionVars implements MutableVars {
  private readonly session: StreamSession;
  /**
   * Variables set by plugins as a flat [name, value, name, value...] list: sessions set one or two
   * (mqtt_client_id, mqtt_username) and idle ones live for hours, where a Map's hash table costs ~250 bytes.
   */
  private custom: VarValue[] | null = null;

  constructor(session: StreamSession) {
    this.session = session;
  }

  // hot path
  get(name: string): VarValue {
    const custom = this.custom;
    if (custom !== null) {
      for (let i = 0; i < custom.length; i += 2) if (custom[i] === name) return custom[i + 1];
    }
    const r = NAMED.get(name);
    return r === undefined ? undefined : r(this.session);
  }

  set(name: string, value: VarValue): void {
    const custom = this.custom;
    if (custom === null) {
      this.custom = [name, value];
      return;
    }
    for (let i = 0; i < custom.length; i += 2) {
      if (custom[i] === name) {
        custom[i + 1] = value;
        return;
      }
    }
    custom.push(name, value);
  }
}

/** What a UDP session peeks: the datagrams received so far (the first one at least). */
export interface DatagramSource {
  peeked(): Buffer;
}

const EMPTY = Buffer.alloc(0);
const NO_BYTES: DatagramSource = { peeked: () => EMPTY };

export class StreamSession implements StreamContext {
  readonly vars: MutableVars;
  readonly protocol: 'tcp' | 'udp';
  remoteAddr: string;
  remotePort: number;
  readonly serverAddr: string;
  readonly serverPort: number;
  sni: string | undefined = undefined;
  routeId = '';
  routeName: string | undefined = undefined;
  serviceId: string | undefined = undefined;
  upstreamAddr: string | undefined = undefined;
  /** traffic-split override set in preread. */
  upstreamOverride: string | JsonObject | null = null;
  /** APISIX stream $status: 200 proxied, 403/503... from plugins, 502 upstream failure, 500 internal. */
  status = 200;
  bytesIn = 0;
  bytesOut = 0;
  readonly startNs = process.hrtime.bigint();
  private pluginData_: Map<string, unknown> | null = null;
  private buffer: Prebuffer | DatagramSource;
  private readonly peekTimeoutMs: number;

  constructor(init: {
    protocol: 'tcp' | 'udp';
    remoteAddr: string;
    remotePort: number;
    serverAddr: string;
    serverPort: number;
    buffer: Prebuffer | DatagramSource;
    peekTimeoutMs: number;
  }) {
    this.protocol = init.protocol;
    this.remoteAddr = init.remoteAddr;
    this.remotePort = init.remotePort;
    this.serverAddr = init.serverAddr;
    this.serverPort = init.serverPort;
    this.buffer = init.buffer;
    this.peekTimeoutMs = init.peekTimeoutMs;
    this.vars = new SessionVars(this);
  }

  /** Created on first use: most stream sessions never store plugin data, and idle ones live for hours. */
  get pluginData(): Map<string, unknown> {
    return (this.pluginData_ ??= new Map());
  }

  /** Drops the peek buffer once the upstream is connected; later peeks see no bytes. */
  detachBuffer(): void {
    this.buffer = NO_BYTES;
  }

  peek(n: number): Promise<Buffer> {
    const b = this.buffer;
    if ('peek' in b) return b.peek(n, this.peekTimeoutMs);
    return Promise.resolve(b.peeked());
  }

  peeked(): Buffer {
    return this.buffer.peeked();
  }

  setUpstream(upstream: string | JsonObject): void {
    this.upstreamOverride = upstream;
  }
}
