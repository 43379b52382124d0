// Balancer contract and registry, shared by the HTTP data plane and the stream proxy (one registry).
// Each balancer type lives in its own file (balancer-<type>.ts) and registers itself via setup().
import type { JsonObject } from '../config/resources.ts';
import type { Vars } from '../router/vars.ts';

export interface Endpoint {
  /** `host:port`, IPv6 hosts bracketed: `[::1]:80`. Unique within an upstream. */
  readonly key: string;
  /** As resolved for connecting (IP address, or hostname when not resolved). */
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  /** Higher priority groups are used first (APISIX node priority). */
  readonly priority: number;
  /** Hostname as configured (for pass_host=node and SNI), equal to host for IP nodes. */
  readonly domain: string;
  readonly metadata?: JsonObject;
}

/** Narrow view of health state; balancers never talk to checkers directly. */
export interface HealthView {
  isHealthy(key: string): boolean;
}

export const ALL_HEALTHY: HealthView = { isHealthy: () => true };

export interface PickContext {
  /** Variable source for chash (vars/header/cookie/consumer/vars_combinations). */
  readonly vars: Vars;
  /** Keys already tried by this request/session (retries never pick the same node twice). */
  readonly tried: ReadonlySet<string> | null;
}

export type PickResult =
  | { readonly ok: true; readonly endpoint: Endpoint }
  | { readonly ok: false; readonly reason: 'no_nodes' | 'exhausted' };

export interface Outcome {
  readonly latencyMs: number;
  readonly failed: boolean;
}

export interface Balancer {
  pick(ctx: PickContext): PickResult; // hot path
  /** Called when a connection/request to the endpoint starts (least_conn). */
  begin?(endpoint: Endpoint): void;
  /** Called when it ends, with its outcome (ewma, least_conn). */
  end?(endpoint: Endpoint, outcome: Outcome): void;
}

export interface BalancerFactory {
  readonly type: string;
  /** `conf` is the upstream object with schema defaults applied (hash_on, key, ...). */
  create(endpoints: readonly Endpoint[], conf: JsonObject, health: HealthView): Balancer;
}

export class BalancerRegistry {
  private readonly factories = new Map<string, BalancerFactory>();

  register(factory: BalancerFactory): void {
    if (this.factories.has(factory.type)) throw new Error(`balancer type ${factory.type} registered twice`);
    this.factories.set(factory.type, factory);
  }

  has(type: string): boolean {
    return this.factories.has(type);
  }

  types(): string[] {
    return [...this.factories.keys()];
  }

  /** Creates a balancer; several node priorities get a priority wrapper (see balancer-priority.ts). */
  get(type: string): BalancerFactory | undefined {
    return this.factories.get(type);
  }
}
