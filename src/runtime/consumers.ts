// Consumer directory of one snapshot: consumers, their credentials and groups, indexed on demand by
// (auth plugin, credential field) so a request does one Map lookup.
import type { Snapshot } from '../config/snapshot.ts';
import type { JsonObject } from '../config/resources.ts';
import type { ConsumerRef } from '../plugin/context.ts';
import type { ConsumerDirectory, ConsumerMatch } from '../plugin/plugin.ts';
import { hasManagerRefs, hasSecretRefs, resolveSecretRefs, type SecretStore } from '../plugin/secret-refs.ts';

/**
 * True when the directory built from `prev` serves `next` as it is: the same consumers, credentials and
 * consumer groups, and, when their confs hold `$secret://` references, the same secrets objects (a changed
 * secrets object is when secret values are fetched again).
 */
export function sameConsumers(next: Snapshot, prev: Snapshot, prevDirectory: SnapshotConsumers): boolean {
  return next.sameKind('consumers', prev) && next.sameKind('credentials', prev) && next.sameKind('consumer_groups', prev) &&
    (!prevDirectory.managerRefs || next.sameKind('secrets', prev));
}

/**
 * A consumer's or credential's auth plugin confs with their `$env://` / `$secret://` references resolved (APISIX
 * resolves them in consumer confs too, e.g. a key-auth key kept in Vault): `plugins` itself when none has one.
 * A conf whose reference cannot be resolved is left out, so that credential cannot authenticate through that
 * plugin: the literal reference would otherwise be a key anyone could guess (the same deviation from APISIX as
 * route plugin confs, src/plugin/secret-refs.ts).
 */
function resolvedPlugins(plugins: JsonObject, secrets: SecretStore): JsonObject {
  if (!hasSecretRefs(plugins)) return plugins;
  const out = Object.create(null) as JsonObject;
  for (const [name, conf] of Object.entries(plugins)) {
    if (conf === null || typeof conf !== 'object' || Array.isArray(conf)) {
      out[name] = conf;
      continue;
    }
    try {
      out[name] = resolveSecretRefs(conf, secrets);
    } catch {
      // Unresolvable: left out (see above). The route plugin with the same reference reports it (500).
    }
  }
  return out;
}

export class SnapshotConsumers implements ConsumerDirectory {
  private readonly refs = new Map<string, ConsumerRef>();
  /** [consumer ref, plugins conf] for consumers and credentials. */
  private readonly holders: { ref: ConsumerRef; plugins: JsonObject }[] = [];
  private readonly indexes = new Map<string, Map<string, ConsumerMatch>>();
  private readonly lists = new Map<string, ConsumerMatch[]>();
  /** Some consumer or credential conf holds a `$secret://` reference (see sameConsumers). */
  managerRefs = false;

  constructor(snapshot: Snapshot) {
    for (const { value } of snapshot.list('consumers')) {
      const username = value.username as string;
      const labels = value.labels as JsonObject | undefined;
      const ref: ConsumerRef = {
        username,
        group_id: typeof value.group_id === 'string' || typeof value.group_id === 'number' ? String(value.group_id) : undefined,
        plugins: (value.plugins as JsonObject | undefined) ?? {},
        // APISIX (consumer.lua): labels.custom_id is sent upstream as X-Consumer-Custom-ID.
        ...(typeof labels?.custom_id === 'string' ? { customId: labels.custom_id } : {}),
      };
      this.refs.set(username, ref);
      if (value.plugins) this.hold(ref, value.plugins as JsonObject, snapshot);
    }
    for (const { item, value } of snapshot.list('credentials')) {
      const slash = item.id.indexOf('/');
      const username = item.id.slice(0, slash);
      const owner = this.refs.get(username);
      if (owner === undefined || !value.plugins) continue;
      const credentialId = item.id.slice(item.id.lastIndexOf('/') + 1);
      this.hold({ ...owner, credentialId }, value.plugins as JsonObject, snapshot);
    }
  }

  private hold(ref: ConsumerRef, plugins: JsonObject, secrets: SecretStore): void {
    if (hasManagerRefs(plugins)) this.managerRefs = true;
    this.holders.push({ ref, plugins: resolvedPlugins(plugins, secrets) });
  }

  get(username: string): ConsumerRef | undefined {
    return this.refs.get(username);
  }

  find(pluginName: string, field: string, value: string): ConsumerMatch | undefined {
    const k = `${pluginName}\0${field}`;
    let idx = this.indexes.get(k);
    if (idx === undefined) {
      idx = new Map();
      for (const h of this.holders) {
        const conf = h.plugins[pluginName] as JsonObject | undefined;
        const v = conf?.[field];
        if (conf !== undefined && typeof v === 'string' && !idx.has(v)) idx.set(v, { consumer: h.ref, conf });
      }
      this.indexes.set(k, idx);
    }
    return idx.get(value);
  }

  withPlugin(pluginName: string): readonly ConsumerMatch[] {
    let list = this.lists.get(pluginName);
    if (list === undefined) {
      list = [];
      for (const h of this.holders) {
        const conf = h.plugins[pluginName] as JsonObject | undefined;
        if (conf !== undefined) list.push({ consumer: h.ref, conf });
      }
      this.lists.set(pluginName, list);
    }
    return list;
  }
}

/**
 * The directory handed to plugin instances: it answers from the newest consumers, so plugin chains that
 * outlive a consumer change (they are reused across snapshots) authenticate against current credentials.
 */
export class LiveConsumers implements ConsumerDirectory {
  current: SnapshotConsumers;

  constructor(initial: SnapshotConsumers) {
    this.current = initial;
  }

  get(username: string): ConsumerRef | undefined {
    return this.current.get(username);
  }

  find(pluginName: string, field: string, value: string): ConsumerMatch | undefined {
    return this.current.find(pluginName, field, value);
  }

  withPlugin(pluginName: string): readonly ConsumerMatch[] {
    return this.current.withPlugin(pluginName);
  }
}
