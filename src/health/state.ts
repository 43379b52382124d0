// Health state of targets, with lua-resty-healthcheck's transition rules shared by active probes and passive
// reports: a success clears the failure counters, a failure clears the success counter; `threshold`
// consecutive outcomes of one kind flip the target, and every flip resets all counters. A threshold of 0
// disables that transition (the outcome is still counted). Targets start healthy.
import type { HealthView } from '../upstream/balancer.ts';

export type FailureKind = 'http' | 'tcp' | 'timeout';

export type NodeStatus = 'healthy' | 'unhealthy' | 'mostly_healthy' | 'mostly_unhealthy';

export interface Counters {
  success: number;
  http_failure: number;
  tcp_failure: number;
  timeout_failure: number;
}

export class TargetState {
  /** Endpoint key `ip:port` as the balancers know it. */
  readonly key: string;
  readonly ip: string;
  readonly port: number;
  readonly hostname: string;
  healthy = true;
  readonly counter: Counters = { success: 0, http_failure: 0, tcp_failure: 0, timeout_failure: 0 };
  /** Passive-only upstreams: consecutive ejections (grows the cool-down) and when the current one ends. */
  ejections = 0;
  cooldownUntil = 0;

  constructor(key: string, ip: string, port: number, hostname: string) {
    this.key = key;
    this.ip = ip;
    this.port = port;
    this.hostname = hostname;
  }

  /** healthy/unhealthy, or mostly_* while counters point the other way (APISIX control API states). */
  get status(): NodeStatus {
    const c = this.counter;
    if (this.healthy) return c.http_failure + c.tcp_failure + c.timeout_failure > 0 ? 'mostly_healthy' : 'healthy';
    return c.success > 0 ? 'mostly_unhealthy' : 'unhealthy';
  }

  /** Counts a success; true when the target became healthy. */
  succeed(threshold: number): boolean {
    const c = this.counter;
    c.http_failure = 0;
    c.tcp_failure = 0;
    c.timeout_failure = 0;
    if (this.healthy) {
      c.success = 0;
      return false;
    }
    c.success++;
    if (threshold > 0 && c.success >= threshold) {
      this.flip(true);
      return true;
    }
    return false;
  }

  /** Counts a failure of `kind`; true when the target became unhealthy. */
  fail(kind: FailureKind, threshold: number): boolean {
    const c = this.counter;
    c.success = 0;
    if (!this.healthy) return false;
    const n = kind === 'http' ? ++c.http_failure : kind === 'tcp' ? ++c.tcp_failure : ++c.timeout_failure;
    if (threshold > 0 && n >= threshold) {
      this.flip(false);
      return true;
    }
    return false;
  }

  /** Forces a state (passive cool-down expiry); true when it changed. */
  force(healthy: boolean): boolean {
    if (this.healthy === healthy) return false;
    this.flip(healthy);
    return true;
  }

  private flip(healthy: boolean): void {
    this.healthy = healthy;
    const c = this.counter;
    c.success = 0;
    c.http_failure = 0;
    c.tcp_failure = 0;
    c.timeout_failure = 0;
  }
}

/**
 * The unhealthy endpoints of one upstream: what balancers read. One instance per upstream key for the life
 * of that key in the config, so runtimes built before a state change see it without being rebuilt.
 */
export class HealthTable implements HealthView {
  private readonly down = new Set<string>();

  isHealthy(key: string): boolean {
    // hot path
    return !this.down.has(key);
  }

  /** True when the state of `key` changed. */
  set(key: string, healthy: boolean): boolean {
    if (healthy) return this.down.delete(key);
    if (this.down.has(key)) return false;
    this.down.add(key);
    return true;
  }

  /** Replaces the whole state (worker resync). */
  replace(unhealthy: Iterable<string>): void {
    this.down.clear();
    for (const k of unhealthy) this.down.add(k);
  }

  unhealthy(): string[] {
    return [...this.down];
  }
}
