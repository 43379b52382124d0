// Registers the built-in balancer types and builds the balancer of an upstream (with the priority wrapper
// when its endpoints carry more than one priority). Shared by the HTTP data plane and the stream proxy.
import type { JsonObject } from '../config/resources.ts';
import type { Balancer, BalancerRegistry, Endpoint, HealthView } from './balancer.ts';
import { chashFactory } from './balancer-chash.ts';
import { ewmaFactory } from './balancer-ewma.ts';
import { leastConnFactory } from './balancer-least-conn.ts';
import { PriorityBalancer } from './balancer-priority.ts';
import { roundRobinFactory } from './balancer-roundrobin.ts';

export function setupBalancers(registry: BalancerRegistry): void {
  registry.register(roundRobinFactory);
  registry.register(chashFactory);
  registry.register(leastConnFactory);
  registry.register(ewmaFactory);
}

/** Throws for an unknown type (a config error the snapshot builder reports for that upstream). */
export function createBalancer(
  registry: BalancerRegistry,
  type: string,
  endpoints: readonly Endpoint[],
  conf: JsonObject,
  health: HealthView,
): Balancer {
  const factory = registry.get(type);
  if (!factory) throw new Error(`unknown balancer type ${JSON.stringify(type)}`);
  const first = endpoints[0]?.priority;
  for (const e of endpoints) {
    if (e.priority !== first) return new PriorityBalancer(factory, endpoints, conf, health);
  }
  return factory.create(endpoints, conf, health);
}
