// One health checker per upstream: the targets (its endpoints), active probe rounds and passive reports.
// Healthy and unhealthy targets are probed by two independent rounds at their own intervals; a round probes
// at most `concurrency` targets at once and a target is never probed twice at the same time. State changes
// go to the upstream's HealthTable (what balancers read) and to `onChange` (cluster broadcast).
//
// Passive semantics: a status in passive.unhealthy.http_statuses counts an http failure, a timeout a timeout,
// any other failed attempt (connect, reset, protocol) a tcp failure; a status in passive.healthy.http_statuses
// counts a success. With an `active` block, only active probes bring a target back (APISIX). Passive-only
// (Switchyard extension): an ejected target returns after a cool-down of `passiveCooldownMs`, doubled for
// each consecutive ejection without a success in between (capped at 8x); a passive success count reaching
// passive.healthy.successes (traffic reaches ejected targets when all are unhealthy) also restores it.
import type { Logger } from '../observability/logger.ts';
import type { Endpoint } from '../upstream/balancer.ts';
import type { HealthConf } from './conf.ts';
import { failure, type ProbeRegistry, type ProbeResult, type ProbeTarget } from './probe.ts';
import { HealthTable, TargetState, type NodeStatus } from './state.ts';

export interface CheckerDeps {
  readonly probes: ProbeRegistry;
  readonly passiveCooldownMs: number;
  readonly onChange: (key: string, endpointKey: string, healthy: boolean) => void;
  readonly logger: Logger;
}

export interface NodeReport {
  ip: string;
  port: number;
  hostname: string;
  status: NodeStatus;
  counter: { success: number; http_failure: number; tcp_failure: number; timeout_failure: number };
}

const MAX_COOLDOWN_FACTOR = 8;

export class UpstreamChecker {
  readonly key: string;
  readonly conf: HealthConf;
  readonly table: HealthTable;
  /** Host header / SNI override for probes (checks.active.host, or upstream_host with pass_host rewrite). */
  private readonly probeHost: string | null;
  private readonly deps: CheckerDeps;
  private readonly targets = new Map<string, TargetState>();
  private readonly probing = new Set<string>();
  /** The pending timer of the healthy round [0] and of the unhealthy round [1]. */
  private readonly timers: (NodeJS.Timeout | null)[] = [null, null];
  private cooldownTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(key: string, conf: HealthConf, table: HealthTable, probeHost: string | null, deps: CheckerDeps) {
    this.key = key;
    this.conf = conf;
    this.table = table;
    this.probeHost = probeHost;
    this.deps = deps;
  }

  /** Follows the upstream's endpoints: new ones start healthy, vanished ones are forgotten. */
  setEndpoints(endpoints: readonly Endpoint[], previous?: UpstreamChecker): void {
    const keep = new Set<string>();
    for (const e of endpoints) {
      keep.add(e.key);
      if (this.targets.has(e.key)) continue;
      const port = this.conf.active?.port ?? e.port;
      const old = previous?.targets.get(e.key);
      const t = old !== undefined && old.port === port ? old : new TargetState(e.key, e.host, port, e.domain);
      this.targets.set(e.key, t);
      this.table.set(e.key, t.healthy);
    }
    for (const k of [...this.targets.keys()]) {
      if (keep.has(k)) continue;
      this.targets.delete(k);
      if (this.table.set(k, true)) this.deps.onChange(this.key, k, true);
    }
    if (previous !== undefined && this.conf.active === null) this.armCooldown();
  }

  start(): void {
    const a = this.conf.active;
    if (a === null || this.closed) return;
    this.loop(true, a.healthy.interval * 1000, 0);
    this.loop(false, a.unhealthy.interval * 1000, a.unhealthy.interval * 1000);
    if (this.deps.probes.get(a.type) === undefined) this.deps.logger.warn({ upstream: this.key, type: a.type }, 'unknown probe type; active checks off');
  }

  close(): void {
    this.closed = true;
    for (let i = 0; i < this.timers.length; i++) {
      const t = this.timers[i];
      if (t) clearTimeout(t);
      this.timers[i] = null;
    }
    if (this.cooldownTimer) clearTimeout(this.cooldownTimer);
    this.cooldownTimer = null;
  }

  /** Passive: the upstream answered `status`. */
  reportStatus(endpointKey: string, status: number): void {
    const p = this.conf.passive;
    if (p === null) return;
    const t = this.targets.get(endpointKey);
    if (t === undefined) return;
    if (p.unhealthy.statuses.has(status)) this.applyFailure(t, 'http', p.unhealthy.httpFailures, `status ${status}`);
    else if (p.healthy.statuses.has(status)) {
      if (t.healthy) t.ejections = 0;
      if (t.succeed(p.healthy.successes)) this.changed(t, 'passive successes');
    }
  }

  /** Passive: the attempt failed without a status (`timeout`, or connect/reset/protocol as tcp failures). */
  reportFailure(endpointKey: string, kind: string): void {
    const p = this.conf.passive;
    if (p === null) return;
    const t = this.targets.get(endpointKey);
    if (t === undefined) return;
    if (kind === 'timeout') this.applyFailure(t, 'timeout', p.unhealthy.timeouts, kind);
    else this.applyFailure(t, 'tcp', p.unhealthy.tcpFailures, kind);
  }

  nodes(): NodeReport[] {
    const out: NodeReport[] = [];
    for (const t of this.targets.values()) {
      out.push({ ip: t.ip, port: t.port, hostname: t.hostname, status: t.status, counter: { ...t.counter } });
    }
    return out;
  }

  /** Unhealthy endpoint keys (full-state sync to workers). */
  unhealthy(): string[] {
    const out: string[] = [];
    for (const t of this.targets.values()) if (!t.healthy) out.push(t.key);
    return out;
  }

  private applyFailure(t: TargetState, kind: 'http' | 'tcp' | 'timeout', threshold: number, reason: string): void {
    if (!t.fail(kind, threshold)) return;
    if (this.conf.active === null) {
      t.ejections++;
      const factor = Math.min(MAX_COOLDOWN_FACTOR, 2 ** (t.ejections - 1));
      t.cooldownUntil = Date.now() + this.deps.passiveCooldownMs * factor;
      this.armCooldown();
    }
    this.changed(t, `passive ${reason}`);
  }

  private armCooldown(): void {
    if (this.closed) return;
    let next = Infinity;
    for (const t of this.targets.values()) if (!t.healthy && t.cooldownUntil > 0) next = Math.min(next, t.cooldownUntil);
    if (this.cooldownTimer) clearTimeout(this.cooldownTimer);
    this.cooldownTimer = null;
    if (next === Infinity) return;
    this.cooldownTimer = setTimeout(() => {
      this.cooldownTimer = null;
      const now = Date.now();
      for (const t of this.targets.values()) {
        if (t.healthy || t.cooldownUntil === 0 || t.cooldownUntil > now) continue;
        t.cooldownUntil = 0;
        if (t.force(true)) this.changed(t, 'passive cool-down over');
      }
      this.armCooldown();
    }, Math.max(0, next - Date.now()));
    this.cooldownTimer.unref();
  }

  private changed(t: TargetState, reason: string): void {
    if (t.healthy) t.cooldownUntil = 0;
    this.table.set(t.key, t.healthy);
    this.deps.logger.warn({ upstream: this.key, node: t.key, healthy: t.healthy, reason }, t.healthy ? 'node healthy' : 'node unhealthy');
    this.deps.onChange(this.key, t.key, t.healthy);
  }

  private loop(healthy: boolean, intervalMs: number, firstDelayMs: number): void {
    const slot = healthy ? 0 : 1;
    const arm = (delayMs: number): void => {
      const t = setTimeout(() => void run(), delayMs);
      t.unref();
      this.timers[slot] = t;
    };
    const run = async (): Promise<void> => {
      this.timers[slot] = null;
      const started = Date.now();
      await this.round(healthy);
      if (!this.closed) arm(Math.max(0, intervalMs - (Date.now() - started)));
    };
    arm(firstDelayMs);
  }

  private async round(healthy: boolean): Promise<void> {
    const a = this.conf.active;
    const probe = a === null ? undefined : this.deps.probes.get(a.type);
    if (a === null || probe === undefined) return;
    const queue = [...this.targets.values()].filter((t) => t.healthy === healthy && !this.probing.has(t.key));
    const worker = async (): Promise<void> => {
      for (let t = queue.shift(); t !== undefined && !this.closed; t = queue.shift()) {
        this.probing.add(t.key);
        const target: ProbeTarget = { ip: t.ip, port: t.port, hostname: this.probeHost ?? t.hostname };
        let r: ProbeResult;
        try {
          r = await probe(target, a);
        } catch (err) {
          // A probe's contract is to resolve; a bug in one must neither end the process (an unhandled rejection)
          // nor leave the node `probing`, never probed again.
          r = failure('tcp', `probe error: ${(err as Error).message}`);
        } finally {
          this.probing.delete(t.key);
        }
        if (this.closed || this.targets.get(t.key) !== t) continue;
        if (r.kind === 'success') {
          if (t.succeed(a.healthy.successes)) this.changed(t, 'active successes');
        } else if (r.kind === 'failure') {
          const threshold =
            r.failure === 'http' ? a.unhealthy.httpFailures : r.failure === 'tcp' ? a.unhealthy.tcpFailures : a.unhealthy.timeouts;
          if (t.fail(r.failure, threshold)) this.changed(t, `active ${r.detail}`);
        }
      }
    };
    const n = Math.min(a.concurrency, queue.length);
    const workers: Promise<void>[] = [];
    for (let i = 0; i < n; i++) workers.push(worker());
    await Promise.all(workers);
  }
}
