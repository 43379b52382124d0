// HealthManager: owns one checker per upstream that has `checks`, created as soon as the upstream appears in
// the config (not on its first request), updated and torn down with it. Keys are the ones the runtimes use:
// `upstreams/<id>`, and `routes/<id>`, `services/<id>`, `stream_routes/<id>` for inline upstreams. A checker
// follows its upstream's endpoints through a private UpstreamRuntime (hostname nodes, service discovery).
// Balancers read a per-key HealthTable handed out by view(); in cluster mode the primary runs the manager and
// workers hold a HealthReplica fed over IPC (see ipc.ts), so probe traffic does not grow with workers.
//
// Events: 'change' (key, endpointKey, healthy) on every state change; 'drop' (key) when a key's checker and
// state are gone (its endpoints count as healthy again).
import { EventEmitter } from 'node:events';
import type { JsonObject } from '../config/resources.ts';
import type { Snapshot } from '../config/snapshot.ts';
import type { Logger } from '../observability/logger.ts';
import { registerHealthSource } from '../observability/sources.ts';
import { ALL_HEALTHY, type BalancerRegistry, type Endpoint, type HealthView } from '../upstream/balancer.ts';
import type { DiscoveryRegistry } from '../upstream/discovery.ts';
import type { DnsCache } from '../upstream/dns.ts';
import { UpstreamRuntime } from '../upstream/upstream.ts';
import { UpstreamChecker, type NodeReport } from './checker.ts';
import { checkType, healthConfOf } from './conf.ts';
import { upstreamConfs } from './keys.ts';
import { ProbeRegistry } from './probe.ts';
import { setupProbes } from './probes.ts';
import { HealthTable } from './state.ts';

/** What the data plane needs from health: per-upstream views and passive outcome reports. */
export interface HealthService {
  view(key: string, conf: JsonObject): HealthView;
  reportStatus(key: string, endpointKey: string, status: number): void;
  /** `kind`: 'timeout', or 'connect' | 'reset' | 'protocol' (tcp failures). */
  reportFailure(key: string, endpointKey: string, kind: string): void;
}

export interface PassiveOutcome {
  readonly status?: number;
  readonly kind?: string;
}

/** The HTTP handler's `outcomes` hook (protocols/http/handler.ts UpstreamOutcomes) over a HealthService. */
export function outcomesOf(svc: HealthService): {
  failure(upstream: { key: string }, endpoint: Endpoint, kind: string): void;
  status(upstream: { key: string }, endpoint: Endpoint, status: number): void;
} {
  return {
    failure: (upstream, endpoint, kind) => svc.reportFailure(upstream.key, endpoint.key, kind),
    status: (upstream, endpoint, status) => svc.reportStatus(upstream.key, endpoint.key, status),
  };
}

export interface CheckerReport {
  /** `/apisix/<key>` as APISIX names checkers. */
  name: string;
  type: string;
  nodes: NodeReport[];
}

export interface HealthManagerOptions {
  readonly balancers: BalancerRegistry;
  readonly logger: Logger;
  readonly probes?: ProbeRegistry;
  readonly dns?: DnsCache | null;
  readonly discovery?: DiscoveryRegistry;
  /** Base cool-down of passive-only ejections (default 10 s; see checker.ts). */
  readonly passiveCooldownMs?: number;
  /** config.yaml apisix.disable_upstream_healthcheck: no checkers, every node healthy. */
  readonly disabled?: boolean;
}

interface Live {
  readonly checker: UpstreamChecker;
  readonly upstream: UpstreamRuntime;
  readonly confJson: string;
}

export class HealthManager extends EventEmitter implements HealthService {
  private readonly opts: HealthManagerOptions;
  private readonly probes: ProbeRegistry;
  private readonly tables = new Map<string, HealthTable>();
  private readonly live = new Map<string, Live>();
  private closed = false;
  /** Upstream node status for the metrics (apisix_upstream_status), read per scrape. */
  private readonly unregisterMetrics = registerHealthSource(this);

  constructor(opts: HealthManagerOptions) {
    super();
    this.opts = opts;
    if (opts.probes) this.probes = opts.probes;
    else {
      this.probes = new ProbeRegistry();
      setupProbes(this.probes);
    }
  }

  view(key: string, conf: JsonObject): HealthView {
    if (this.opts.disabled || conf.checks === undefined) return ALL_HEALTHY;
    return this.table(key);
  }

  reportStatus(key: string, endpointKey: string, status: number): void {
    // hot path
    this.live.get(key)?.checker.reportStatus(endpointKey, status);
  }

  reportFailure(key: string, endpointKey: string, kind: string): void {
    // hot path
    this.live.get(key)?.checker.reportFailure(endpointKey, kind);
  }

  report(key: string, endpointKey: string, outcome: PassiveOutcome): void {
    if (outcome.status !== undefined) this.reportStatus(key, endpointKey, outcome.status);
    else if (outcome.kind !== undefined) this.reportFailure(key, endpointKey, outcome.kind);
  }

  /** Creates, updates and tears down checkers to match `snapshot`. */
  sync(snapshot: Snapshot): void {
    if (this.closed) return;
    const want = new Map<string, JsonObject>();
    if (!this.opts.disabled) for (const [key, conf] of upstreamConfs(snapshot)) if (conf.checks !== undefined) want.set(key, conf);
    for (const [key, l] of [...this.live]) {
      if (want.has(key)) continue;
      this.stop(l);
      this.live.delete(key);
    }
    for (const key of [...this.tables.keys()]) {
      if (want.has(key)) continue;
      this.tables.get(key)!.replace([]);
      this.tables.delete(key);
      this.emit('drop', key);
    }
    for (const [key, conf] of want) {
      const prev = this.live.get(key);
      const json = JSON.stringify(conf);
      if (prev !== undefined && prev.confJson === json) continue;
      const next = this.create(key, conf, json, prev);
      if (prev !== undefined) this.stop(prev);
      if (next === null) this.live.delete(key);
      else {
        this.live.set(key, next);
        next.checker.start();
      }
    }
  }

  /** Every checker, for the control API. */
  list(): CheckerReport[] {
    return [...this.live.entries()].map(([key, l]) => this.reportOf(key, l));
  }

  get(key: string): CheckerReport | undefined {
    const l = this.live.get(key);
    return l === undefined ? undefined : this.reportOf(key, l);
  }

  /** Unhealthy endpoints per key (full state for a worker that just started). */
  state(): [string, string[]][] {
    const out: [string, string[]][] = [];
    for (const [key, l] of this.live) {
      const down = l.checker.unhealthy();
      if (down.length > 0) out.push([key, down]);
    }
    return out;
  }

  close(): void {
    this.closed = true;
    this.unregisterMetrics();
    for (const l of this.live.values()) this.stop(l);
    this.live.clear();
  }

  private table(key: string): HealthTable {
    let t = this.tables.get(key);
    if (t === undefined) {
      t = new HealthTable();
      this.tables.set(key, t);
    }
    return t;
  }

  private reportOf(key: string, l: Live): CheckerReport {
    return { name: `/apisix/${key}`, type: checkType(l.checker.conf), nodes: l.checker.nodes() };
  }

  private stop(l: Live): void {
    l.checker.close();
    l.upstream.close();
  }

  private create(key: string, conf: JsonObject, json: string, prev: Live | undefined): Live | null {
    const hc = healthConfOf(conf);
    if (hc === null) return null;
    const table = this.table(key);
    const keepState = prev !== undefined && prev.checker.conf.json === hc.json;
    const before = table.unhealthy();
    if (!keepState) table.replace([]);
    const probeHost = hc.active?.host ?? (conf.pass_host === 'rewrite' && typeof conf.upstream_host === 'string' ? conf.upstream_host : null);
    const checker = new UpstreamChecker(key, hc, table, probeHost, {
      probes: this.probes,
      passiveCooldownMs: this.opts.passiveCooldownMs ?? 10_000,
      onChange: (k, ep, healthy) => this.emit('change', k, ep, healthy),
      logger: this.opts.logger,
    });
    let upstream: UpstreamRuntime;
    try {
      upstream = new UpstreamRuntime({
        key,
        conf,
        registry: this.opts.balancers,
        dns: this.opts.dns ?? null,
        discovery: this.opts.discovery,
        onEndpointsChanged: (u) => checker.setEndpoints(u.endpoints),
      });
    } catch (err) {
      this.opts.logger.warn({ upstream: key, error: (err as Error).message }, 'health checker not started: invalid upstream');
      for (const ep of before) if (table.isHealthy(ep)) this.emit('change', key, ep, true);
      return null;
    }
    checker.setEndpoints(upstream.endpoints, keepState ? prev!.checker : undefined);
    for (const ep of before) if (table.isHealthy(ep)) this.emit('change', key, ep, true);
    return { checker, upstream, confJson: json };
  }
}
