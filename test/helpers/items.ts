// Building blocks for tests that drive runtimes from hand-made config: StoredItems and the real registries.
import type { JsonObject, Kind, StoredItem } from '../../src/config/resources.ts';
import { setupBuiltinPlugins } from '../../src/plugin/builtin/index.ts';
import { PluginRegistry } from '../../src/plugin/registry.ts';
import { BalancerRegistry } from '../../src/upstream/balancer.ts';
import { setupBalancers } from '../../src/upstream/balancers.ts';

let seq = 0;

/** A stored item as a backend would deliver it, with increasing revisions. */
export function item(kind: Kind, id: string, value: JsonObject): StoredItem {
  seq++;
  return { kind, id, key: `/apisix/${kind}/${id}`, value, createdIndex: seq, modifiedIndex: seq };
}

/** Registries with every builtin plugin and balancer, as the gateway sets them up. */
export function registries(): { plugins: PluginRegistry; balancers: BalancerRegistry } {
  const plugins = new PluginRegistry();
  setupBuiltinPlugins(plugins);
  const balancers = new BalancerRegistry();
  setupBalancers(balancers);
  return { plugins, balancers };
}
