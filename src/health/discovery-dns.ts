// `discovery_type: dns` (APISIX discovery/dns): `service_name` is `name` or `name:port`, resolved through
// config.yaml `discovery.dns.servers` trying record types in `order` (default SRV, A, AAAA; `last` tries the
// type that answered last time first). SRV: each record's target addresses share its weight evenly (weight 0
// counts as 1), the record's port is used unless service_name has one (port 0: the scheme's default), and
// priority becomes -priority (lower SRV priority is preferred). A/AAAA: every address, weight 1. Answers are
// refreshed at their smallest TTL; a failed refresh keeps the last nodes and retries after `error_ttl`. One
// resolution per distinct (service_name, scheme) however many upstreams use it.
import type { JsonObject } from '../config/resources.ts';
import type { Logger } from '../observability/logger.ts';
import type { DiscoveryProvider, NodeSource } from '../upstream/discovery.ts';
import { defaultPort, splitHostPort, type NodeSpec } from '../upstream/endpoints.ts';
import { DnsClient, type AddressRecord, type DnsAnswer, type QueryType } from './dns-wire.ts';

export interface DnsDiscoveryOptions {
  readonly servers: readonly string[];
  readonly order?: readonly string[];
  readonly timeoutMs?: number;
  /** TTL clamps and failure retry delay, seconds. */
  readonly minTtl?: number;
  readonly maxTtl?: number;
  readonly errorTtl?: number;
  readonly logger?: Logger;
}

const DEFAULT_ORDER: readonly string[] = ['last', 'SRV', 'A', 'AAAA'];
const TYPES = new Set<string>(['SRV', 'A', 'AAAA']);

interface Resolution {
  readonly nodes: NodeSpec[];
  readonly ttl: number;
  readonly type: QueryType | null;
}

class Entry implements NodeSource {
  current: readonly NodeSpec[] | undefined;
  last: QueryType | null = null;
  readonly listeners = new Set<() => void>();
  timer: NodeJS.Timeout | null = null;
  closed = false;
  readonly first: Promise<void>;
  private readonly owner: DnsDiscovery;
  readonly key: string;
  readonly name: string;
  readonly port: number | null;
  readonly scheme: string;

  constructor(owner: DnsDiscovery, key: string, name: string, port: number | null, scheme: string) {
    this.owner = owner;
    this.key = key;
    this.name = name;
    this.port = port;
    this.scheme = scheme;
    this.first = this.refresh();
  }

  nodes(): readonly NodeSpec[] | undefined {
    return this.current;
  }

  ready(): Promise<void> {
    return this.first;
  }

  watch(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.owner.release(this);
    };
  }

  async refresh(): Promise<void> {
    let delay: number;
    try {
      const r = await this.owner.resolve(this);
      if (r.type !== null) this.last = r.type;
      const changed = !sameNodes(this.current, r.nodes);
      this.current = Object.freeze(r.nodes);
      delay = r.ttl;
      if (changed) for (const l of [...this.listeners]) l();
    } catch (err) {
      this.owner.logger?.warn({ service: this.name, err: (err as Error).message }, 'dns discovery failed; keeping the last nodes');
      delay = this.owner.errorTtl;
    }
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.refresh();
    }, delay * 1000);
    this.timer.unref();
  }
}

export class DnsDiscovery implements DiscoveryProvider {
  readonly type = 'dns';
  readonly errorTtl: number;
  readonly logger: Logger | undefined;
  private readonly client: DnsClient;
  private readonly order: readonly string[];
  private readonly minTtl: number;
  private readonly maxTtl: number;
  private readonly entries = new Map<string, Entry>();
  private readonly config: JsonObject;

  constructor(opts: DnsDiscoveryOptions) {
    this.config = { servers: [...opts.servers], order: [...(opts.order ?? DEFAULT_ORDER)], timeout: opts.timeoutMs ?? 2000 };
    this.client = new DnsClient({ servers: opts.servers, timeoutMs: opts.timeoutMs ?? 2000 });
    this.order = (opts.order ?? DEFAULT_ORDER).filter((t) => t === 'last' || TYPES.has(t));
    this.minTtl = opts.minTtl ?? 1;
    this.maxTtl = Math.max(this.minTtl, opts.maxTtl ?? 3600);
    this.errorTtl = opts.errorTtl ?? 5;
    this.logger = opts.logger;
  }

  /** Builds from config.yaml `discovery.dns` (`servers`, `order`, `timeout` ms); null when absent. */
  static fromConfig(discovery: unknown, logger?: Logger): DnsDiscovery | null {
    const dns = (discovery as { dns?: JsonObject } | undefined)?.dns;
    if (typeof dns !== 'object' || dns === null || !Array.isArray(dns.servers) || dns.servers.length === 0) return null;
    return new DnsDiscovery({
      servers: dns.servers.map(String),
      order: Array.isArray(dns.order) ? dns.order.map(String) : undefined,
      timeoutMs: typeof dns.timeout === 'number' ? dns.timeout : undefined,
      logger,
    });
  }

  source(upstream: JsonObject): NodeSource {
    const raw = upstream.service_name;
    if (typeof raw !== 'string' || raw === '') throw new Error('dns discovery needs service_name');
    const { host, port } = splitHostPort(raw);
    const scheme = typeof upstream.scheme === 'string' ? upstream.scheme : 'http';
    const key = `${host.toLowerCase()}|${port ?? ''}|${scheme}`;
    let e = this.entries.get(key);
    if (e === undefined) {
      e = new Entry(this, key, host.toLowerCase(), port, scheme);
      this.entries.set(key, e);
    }
    return e;
  }

  /**
   * The Control API's dump: `services` maps each resolved service_name (`name` or `name:port`, with ` (<scheme>)`
   * appended for schemes other than http, whose default port differs) to its current nodes; [] until the first
   * answer.
   */
  dump(): JsonObject {
    const services: JsonObject = {};
    for (const e of this.entries.values()) {
      const name = (e.port === null ? e.name : `${e.name}:${e.port}`) + (e.scheme === 'http' ? '' : ` (${e.scheme})`);
      services[name] = (e.current ?? []).map((n) => ({ host: n.host, port: n.port, weight: n.weight, priority: n.priority }));
    }
    return { config: this.config, services };
  }

  release(e: Entry): void {
    e.closed = true;
    if (e.timer) clearTimeout(e.timer);
    e.timer = null;
    if (this.entries.get(e.key) === e) this.entries.delete(e.key);
  }

  close(): void {
    for (const e of [...this.entries.values()]) this.release(e);
  }

  async resolve(e: Entry): Promise<Resolution> {
    const tried = new Set<string>();
    let answeredEmpty = false;
    for (const t of this.order) {
      const type = (t === 'last' ? e.last : t) as QueryType | null;
      if (type === null || tried.has(type)) continue;
      tried.add(type);
      const ans = await this.client.query(e.name, type);
      const r = type === 'SRV' ? await this.fromSrv(e, ans) : this.fromAddresses(e, ans.addresses);
      if (r.nodes.length > 0) return { ...r, type };
      answeredEmpty = true;
    }
    if (!answeredEmpty) throw new Error(`dns: no record type to try for ${e.name}`);
    return { nodes: [], ttl: this.errorTtl, type: null };
  }

  private clamp(ttl: number): number {
    return Math.min(this.maxTtl, Math.max(this.minTtl, ttl));
  }

  private portFor(e: Entry, recordPort: number): number | null {
    if (e.port !== null) return e.port;
    return recordPort > 0 ? recordPort : defaultPort(e.scheme);
  }

  private fromAddresses(e: Entry, addrs: readonly AddressRecord[]): Omit<Resolution, 'type'> {
    const port = this.portFor(e, 0);
    if (port === null || addrs.length === 0) return { nodes: [], ttl: this.errorTtl };
    const nodes = [...new Set(addrs.map((a) => a.address))].sort().map((ip) => node(ip, port, 1, 0));
    return { nodes, ttl: this.clamp(Math.min(...addrs.map((a) => a.ttl))) };
  }

  private async fromSrv(e: Entry, ans: DnsAnswer): Promise<Omit<Resolution, 'type'>> {
    const nodes: NodeSpec[] = [];
    let ttl = Infinity;
    for (const rec of ans.srv) {
      const port = this.portFor(e, rec.port);
      if (port === null) continue;
      let addrs = ans.additional.filter((a) => a.name === rec.target);
      if (addrs.length === 0) {
        const a4 = await this.client.query(rec.target, 'A');
        addrs = a4.addresses.length > 0 ? a4.addresses : (await this.client.query(rec.target, 'AAAA')).addresses;
      }
      ttl = Math.min(ttl, rec.ttl, ...addrs.map((a) => a.ttl));
      const ips = [...new Set(addrs.map((a) => a.address))].sort();
      const weight = Math.max(1, Math.floor((rec.weight === 0 ? 1 : rec.weight) / Math.max(1, ips.length)));
      for (const ip of ips) nodes.push(node(ip, port, weight, -rec.priority));
    }
    return { nodes, ttl: nodes.length > 0 ? this.clamp(ttl) : this.errorTtl };
  }
}

function node(ip: string, port: number, weight: number, priority: number): NodeSpec {
  return Object.freeze({ host: ip, port, weight, priority, isIp: true });
}

function sameNodes(a: readonly NodeSpec[] | undefined, b: readonly NodeSpec[]): boolean {
  if (a === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.host !== y.host || x.port !== y.port || x.weight !== y.weight || x.priority !== y.priority) return false;
  }
  return true;
}
