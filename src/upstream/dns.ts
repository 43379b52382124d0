// Hostname resolution for upstream nodes, off the request path. Answers are cached for their TTL (clamped to
// [minTtl, maxTtl]); watched names are refreshed in the background when they expire and listeners hear about
// changed answers. /etc/hosts is consulted first (like the system resolver), then DNS via
// dns.promises.Resolver. A failed refresh keeps serving the last good answer and retries after errorTtl.
import { promises as dnsp, type RecordWithTtl } from 'node:dns';
import { readFile, stat } from 'node:fs/promises';
import net from 'node:net';

export interface DnsOptions {
  /** Nameservers (`ip` or `ip:port`); default: the system's. */
  readonly servers?: readonly string[];
  /** Per-query timeout in ms (default 2000) and attempts per nameserver (default 2). */
  readonly timeoutMs?: number;
  readonly tries?: number;
  /** TTL clamps in seconds (defaults 1 and 3600). */
  readonly minTtl?: number;
  readonly maxTtl?: number;
  /** Seconds before retrying a failed lookup (default 5). */
  readonly errorTtl?: number;
  /** Hosts file, null to skip it (default /etc/hosts); its answers live `hostsTtl` seconds (default 60). */
  readonly hostsFile?: string | null;
  readonly hostsTtl?: number;
  /** Also use AAAA answers when A answers exist (default false: IPv6 only for IPv6-only names). */
  readonly ipv6?: boolean;
}

export type DnsListener = (host: string, addrs: readonly string[]) => void;

interface Entry {
  addrs: readonly string[] | undefined;
  expiresAt: number;
  inflight: Promise<readonly string[]> | null;
  readonly listeners: Set<DnsListener>;
  timer: NodeJS.Timeout | null;
}

interface Answer {
  readonly addrs: string[];
  readonly ttl: number;
}

const NOT_FOUND = new Set(['ENODATA', 'ENOTFOUND', 'NOTFOUND', 'NODATA']);

export class DnsCache {
  private readonly resolver: dnsp.Resolver;
  private readonly entries = new Map<string, Entry>();
  private readonly minTtl: number;
  private readonly maxTtl: number;
  private readonly errorTtl: number;
  private readonly hostsFile: string | null;
  private readonly hostsTtl: number;
  private readonly ipv6: boolean;
  private hosts: { map: Map<string, string[]>; mtimeMs: number; checkedAt: number } | null = null;
  private closed = false;

  constructor(opts: DnsOptions = {}) {
    this.resolver = new dnsp.Resolver({ timeout: opts.timeoutMs ?? 2000, tries: opts.tries ?? 2 });
    if (opts.servers && opts.servers.length > 0) this.resolver.setServers([...opts.servers]);
    this.minTtl = opts.minTtl ?? 1;
    this.maxTtl = Math.max(this.minTtl, opts.maxTtl ?? 3600);
    this.errorTtl = opts.errorTtl ?? 5;
    this.hostsFile = opts.hostsFile === undefined ? '/etc/hosts' : opts.hostsFile;
    this.hostsTtl = opts.hostsTtl ?? 60;
    this.ipv6 = opts.ipv6 ?? false;
  }

  /** The cached answer (possibly stale), without any I/O. */
  peek(host: string): readonly string[] | undefined {
    return this.entries.get(host.toLowerCase())?.addrs;
  }

  /** A fresh cached answer or a new lookup. Rejects only when there is no answer at all. */
  async resolve(host: string): Promise<readonly string[]> {
    const name = host.toLowerCase();
    const e = this.entry(name);
    if (e.addrs && Date.now() < e.expiresAt) return e.addrs;
    return await this.refresh(name, e);
  }

  /** Keeps `host` refreshed at its TTL and calls `listener` whenever its answer changes. Returns an unsubscribe. */
  watch(host: string, listener: DnsListener): () => void {
    const name = host.toLowerCase();
    const e = this.entry(name);
    e.listeners.add(listener);
    if (e.timer === null && e.inflight === null) this.schedule(name, e, e.addrs ? e.expiresAt - Date.now() : 0);
    return () => {
      e.listeners.delete(listener);
      if (e.listeners.size > 0) return;
      if (e.timer) clearTimeout(e.timer);
      e.timer = null;
      if (this.entries.get(name) === e) this.entries.delete(name);
    };
  }

  close(): void {
    this.closed = true;
    for (const e of this.entries.values()) if (e.timer) clearTimeout(e.timer);
    this.entries.clear();
  }

  private entry(name: string): Entry {
    let e = this.entries.get(name);
    if (!e) {
      e = { addrs: undefined, expiresAt: 0, inflight: null, listeners: new Set(), timer: null };
      this.entries.set(name, e);
    }
    return e;
  }

  private refresh(name: string, e: Entry): Promise<readonly string[]> {
    if (e.inflight) return e.inflight;
    const p = this.query(name).then(
      (ans) => {
        e.inflight = null;
        const changed = !sameAddrs(e.addrs, ans.addrs);
        e.addrs = Object.freeze(ans.addrs);
        e.expiresAt = Date.now() + ans.ttl * 1000;
        this.schedule(name, e, ans.ttl * 1000);
        if (changed) for (const l of e.listeners) l(name, e.addrs);
        return e.addrs;
      },
      (err: unknown) => {
        e.inflight = null;
        this.schedule(name, e, this.errorTtl * 1000);
        if (e.addrs) return e.addrs;
        throw err;
      },
    );
    e.inflight = p;
    return p;
  }

  private schedule(name: string, e: Entry, delayMs: number): void {
    if (e.timer) clearTimeout(e.timer);
    e.timer = null;
    if (this.closed || e.listeners.size === 0) return;
    e.timer = setTimeout(() => {
      e.timer = null;
      this.refresh(name, e).catch(() => undefined);
    }, Math.max(0, delayMs));
    e.timer.unref();
  }

  private clampTtl(ttl: number): number {
    return Math.min(this.maxTtl, Math.max(this.minTtl, ttl));
  }

  private async query(name: string): Promise<Answer> {
    if (net.isIP(name)) return { addrs: [name], ttl: this.maxTtl };
    const fromHosts = await this.fromHosts(name);
    if (fromHosts) return { addrs: this.choose(fromHosts), ttl: this.clampTtl(this.hostsTtl) };

    const v4 = await this.resolver.resolve4(name, { ttl: true }).then(ok, failed);
    let use = v4.records;
    if (use.length === 0 || this.ipv6) {
      const v6 = await this.resolver.resolve6(name, { ttl: true }).then(ok, failed);
      use = [...use, ...v6.records];
      if (use.length === 0 && (v4.error ?? v6.error)) throw v4.error ?? v6.error;
    }
    if (use.length === 0) throw new Error(`dns: no address for ${name}`);
    const ttl = Math.min(...use.map((r) => r.ttl));
    return { addrs: [...new Set(use.map((r) => r.address))].sort(), ttl: this.clampTtl(ttl) };
  }

  private choose(addrs: readonly string[]): string[] {
    const v4 = addrs.filter((a) => net.isIPv4(a));
    const picked = v4.length > 0 && !this.ipv6 ? v4 : [...addrs];
    return [...new Set(picked)].sort();
  }

  private async fromHosts(name: string): Promise<string[] | undefined> {
    if (this.hostsFile === null) return undefined;
    const now = Date.now();
    if (!this.hosts || now - this.hosts.checkedAt > this.hostsTtl * 1000) {
      try {
        const st = await stat(this.hostsFile);
        if (!this.hosts || st.mtimeMs !== this.hosts.mtimeMs) {
          this.hosts = { map: parseHosts(await readFile(this.hostsFile, 'utf8')), mtimeMs: st.mtimeMs, checkedAt: now };
        } else {
          this.hosts.checkedAt = now;
        }
      } catch {
        this.hosts = { map: new Map(), mtimeMs: -1, checkedAt: now };
      }
    }
    return this.hosts.map.get(name);
  }
}

interface Lookup {
  readonly records: RecordWithTtl[];
  /** Set for failures other than "no such name/record" (timeouts, refused...). */
  readonly error?: unknown;
}

function ok(records: RecordWithTtl[]): Lookup {
  return { records };
}

function failed(err: unknown): Lookup {
  const code = (err as { code?: string }).code;
  return code !== undefined && NOT_FOUND.has(code) ? { records: [] } : { records: [], error: err };
}

function sameAddrs(a: readonly string[] | undefined, b: readonly string[]): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `/etc/hosts` format: address followed by names, `#` comments. */
export function parseHosts(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const [addr, ...names] = line.split(/\s+/);
    if (!addr || net.isIP(addr) === 0) continue;
    for (const n of names) {
      const key = n.toLowerCase();
      const list = map.get(key);
      if (list) {
        if (!list.includes(addr)) list.push(addr);
      } else map.set(key, [addr]);
    }
  }
  return map;
}
