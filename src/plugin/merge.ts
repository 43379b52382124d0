// APISIX plugin merge precedence (apisix-compat 5.2): for the same plugin name the higher layer replaces the
// whole conf. Net order: consumer > consumer_group > route > plugin_config > service. Global rules are never
// merged here; they run as their own chain. Config time only: results are fresh objects, inputs untouched.
import type { JsonObject } from '../config/resources.ts';

function overlay(target: JsonObject, layer: JsonObject | undefined): void {
  if (layer === undefined) return;
  for (const name of Object.keys(layer)) target[name] = layer[name];
}

/**
 * Route plugins after `merge_service_route` and `plugin_config.merge`: the service's plugins are the base,
 * the plugin_config adds or replaces them, the route's own plugins win over both.
 */
export function mergeRoutePlugins(layers: {
  readonly service?: JsonObject;
  readonly pluginConfig?: JsonObject;
  readonly route?: JsonObject;
}): JsonObject {
  const out: JsonObject = {};
  overlay(out, layers.service);
  overlay(out, layers.pluginConfig);
  overlay(out, layers.route);
  return out;
}

/** `merge_consumer_route`: consumer_group plugins, then consumer plugins, overwrite the route's by name. */
export function mergeConsumerPlugins(
  base: JsonObject,
  consumerGroup?: JsonObject,
  consumer?: JsonObject,
): JsonObject {
  const out: JsonObject = {};
  overlay(out, base);
  overlay(out, consumerGroup);
  overlay(out, consumer);
  return out;
}

/**
 * Names whose conf comes from the consumer or its group (APISIX marks them `_from_consumer`): their rewrite
 * phase runs after authentication ("rewrite_in_consumer"), auth plugins excepted.
 */
export function consumerPluginNames(consumerGroup?: JsonObject, consumer?: JsonObject): Set<string> {
  const names = new Set<string>();
  if (consumerGroup) for (const n of Object.keys(consumerGroup)) names.add(n);
  if (consumer) for (const n of Object.keys(consumer)) names.add(n);
  return names;
}
