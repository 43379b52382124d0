// The per-session context stream plugins see (StreamContext) and the variables it exposes (MutableVars).
// APISIX stream variables: remote_addr, remote_port, server_addr, server_port, server_name / ssl_server_name
// (SNI), protocol, route_id, route_name, service_id, upstream_addr, bytes_received, bytes_sent, status,
// session_time, plus what plugins set (mqtt_client_id, mqtt_username, ...).
import type { JsonObject } from '../../src/config/resources.ts';
import type { MutableVars, StreamContext } from '../../src/plugin/context.ts';
import type { VarValue } from '../../src/router/vars.ts';
import type { StreamRoute } from '../../stream-routes/types.ts';
import type { Prebuffer } from './prebuffer.ts';

type Resolver = (s: StreamSession) => VarValue;

/**
 * The session's start is kept as whole milliseconds of performance.now(), a small integer stored in the session
 * itself (a bigint or a fractional number is a separate heap object per session, and idle sessions live for
 * hours). startNs is derived from it on the hrtime clock: both read the same monotonic clock.
 */
const NS_AT_LOAD = process.hrtime.bigint();
const MS_AT_LOAD = performance.now();

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
  ['session_time', (s) => Math.max(0, performance.now() - s.startMs) / 1e3],
]);

/** What a UDP session peeks: the datagrams received so far (the first one at least). */
export interface DatagramSource {
  peeked(): Buffer;
}

const EMPTY = Buffer.alloc(0);
const NO_BYTES: DatagramSource = { peeked: () => EMPTY };

/**
 * The session is its own variable table (`vars` is the session): a separate object per session would cost its
 * header and a slot here. Variables set by plugins are kept inline for the first one (mqtt-proxy sets the
 * client id) and in a flat [name, value, ...] list after that; a Map's hash table costs ~250 bytes.
 */
export class StreamSession implements StreamContext, MutableVars {
  readonly protocol: 'tcp' | 'udp';
  remoteAddr: string;
  remotePort: number;
  readonly serverAddr: string;
  readonly serverPort: number;
  sni: string | undefined = undefined;
  /** The matched route (set by admission); its id, name and service are read from it, not copied. */
  route: StreamRoute | null = null;
  upstreamAddr: string | undefined = undefined;
  /** traffic-split override set in preread. */
  upstreamOverride: string | JsonObject | null = null;
  /** APISIX stream $status: 200 proxied, 403/503... from plugins, 502 upstream failure, 500 internal. */
  status = 200;
  bytesIn = 0;
  bytesOut = 0;
  /** Math.floor(performance.now()) at the start (see NS_AT_LOAD). */
  readonly startMs = Math.floor(performance.now());
  private var0Name: string | undefined = undefined;
  private var0: VarValue = undefined;
  private moreVars: VarValue[] | null = null;
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
  }

  get routeId(): string {
    return this.route === null ? '' : this.route.id;
  }

  get routeName(): string | undefined {
    return this.route?.name;
  }

  get serviceId(): string | undefined {
    return this.route?.serviceId;
  }

  get vars(): MutableVars {
    return this;
  }

  get startNs(): bigint {
    return NS_AT_LOAD + BigInt(Math.round((this.startMs - MS_AT_LOAD) * 1e6));
  }

  // hot path
  get(name: string): VarValue {
    if (this.var0Name === name) return this.var0;
    const more = this.moreVars;
    if (more !== null) {
      for (let i = 0; i < more.length; i += 2) if (more[i] === name) return more[i + 1];
    }
    const r = NAMED.get(name);
    return r === undefined ? undefined : r(this);
  }

  set(name: string, value: VarValue): void {
    if (this.var0Name === undefined || this.var0Name === name) {
      this.var0Name = name;
      this.var0 = value;
      return;
    }
    const more = this.moreVars;
    if (more === null) {
      this.moreVars = [name, value];
      return;
    }
    for (let i = 0; i < more.length; i += 2) {
      if (more[i] === name) {
        more[i + 1] = value;
        return;
      }
    }
    more.push(name, value);
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
