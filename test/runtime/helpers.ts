// Fixtures for runtime tests: a config held as StoredItems (new object per write, like the stores), snapshots
// built from it, a registry with the builtin plugins plus a `tracker` plugin that records creations and
// destructions, and an in-memory ConfigStore for the RuntimeManager.
import { EventEmitter } from 'node:events';
import type { JsonObject, Kind, StoredItem } from '../../src/config/resources.ts';
import { itemKey } from '../../src/config/resources.ts';
import { buildSnapshot, type Snapshot } from '../../src/config/snapshot.ts';
import type { ConfigEvent, ConfigStore } from '../../src/config/store.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { setupBuiltinPlugins } from '../../src/plugin/builtin/index.ts';
import type { ConsumerDirectory, PluginDef } from '../../src/plugin/plugin.ts';
import { PluginRegistry } from '../../src/plugin/registry.ts';
import { checkExpr } from '../../src/router/expr.ts';
import type { MatchInput } from '../../src/router/router.ts';
import { MapVars } from '../../src/router/vars.ts';
import { HttpRuntimeBuilder } from '../../src/runtime/http-runtime.ts';
import type { HttpRoute, HttpRuntime } from '../../src/runtime/types.ts';
import { BalancerRegistry } from '../../src/upstream/balancer.ts';
import { setupBalancers } from '../../src/upstream/balancers.ts';

export interface TrackerInstance {
  readonly tag: unknown;
  readonly metadata: JsonObject | undefined;
  readonly consumers: ConsumerDirectory;
  destroyed: number;
  destroy(): void;
}

/** Every tracker instance ever created, in creation order. */
export interface Tracker {
  readonly created: TrackerInstance[];
}

export function makeRegistry(): { plugins: PluginRegistry; tracker: Tracker } {
  const tracker: Tracker = { created: [] };
  const def: PluginDef = {
    name: 'tracker',
    version: '0.1',
    priority: 7331,
    schema: { type: 'object', properties: { tag: { type: 'string' } } },
    metadataSchema: { type: 'object', properties: { level: { type: 'integer' } } },
    subsystems: ['http'],
    status: 'stable',
    create: (conf, env) => {
      const inst: TrackerInstance = {
        tag: conf.tag,
        metadata: env.metadata,
        consumers: env.consumers,
        destroyed: 0,
        destroy() {
          inst.destroyed++;
        },
      };
      tracker.created.push(inst);
      return inst;
    },
  };
  const plugins = new PluginRegistry();
  setupBuiltinPlugins(plugins);
  plugins.register(def);
  plugins.setEnabled([...plugins.registeredNames('http')], [...plugins.registeredNames('stream')]);
  return { plugins, tracker };
}

export function makeBuilder(plugins: PluginRegistry): HttpRuntimeBuilder {
  const balancers = new BalancerRegistry();
  setupBalancers(balancers);
  return new HttpRuntimeBuilder({ plugins, balancers, attrs: {}, logger: silentLogger });
}

/** A config as the stores hold it: every write makes a new StoredItem, unchanged items keep theirs. */
export class Config {
  private readonly items = new Map<string, StoredItem>();
  private rev = 0;
  private last: Snapshot | undefined;
  readonly plugins: PluginRegistry;

  constructor(plugins: PluginRegistry) {
    this.plugins = plugins;
  }

  put(kind: Kind, id: string, value: JsonObject): StoredItem {
    const key = itemKey('/apisix', kind, id);
    const prev = this.items.get(key);
    this.rev++;
    const item: StoredItem = { kind, id, key, value, createdIndex: prev?.createdIndex ?? this.rev, modifiedIndex: this.rev };
    this.items.set(key, item);
    return item;
  }

  delete(kind: Kind, id: string): void {
    this.rev++;
    this.items.delete(itemKey('/apisix', kind, id));
  }

  get revision(): number {
    return this.rev;
  }

  all(): StoredItem[] {
    return [...this.items.values()];
  }

  snapshot(): Snapshot {
    this.last = buildSnapshot(this.all(), this.rev, { plugins: this.plugins, compileVars: checkExpr, previous: this.last });
    return this.last;
  }
}

/** An in-memory ConfigStore over a Config (the RuntimeManager reads all(), revision and events). */
export class MemoryStore extends EventEmitter {
  readonly backend = 'file' as const;
  readonly prefix = '/apisix';
  readonly ready = true;
  readonly config: Config;

  constructor(config: Config) {
    super();
    this.config = config;
  }

  get revision(): number {
    return this.config.revision;
  }

  all(): StoredItem[] {
    return this.config.all();
  }

  put(kind: Kind, id: string, value: JsonObject): void {
    const item = this.config.put(kind, id, value);
    const events: ConfigEvent[] = [{ type: 'put', kind, id, item }];
    this.emit('change', events, this.config.revision);
  }

  delete(kind: Kind, id: string): void {
    this.config.delete(kind, id);
    this.emit('change', [{ type: 'delete', kind, id }] satisfies ConfigEvent[], this.config.revision);
  }

  asStore(): ConfigStore {
    return this as unknown as ConfigStore;
  }
}

export function request(path: string, method = 'GET', host = 'example.com'): MatchInput {
  return { method, host, path, remoteAddr: '127.0.0.1', vars: new MapVars({}), params: null };
}

export function routeAt(rt: HttpRuntime, path: string): HttpRoute | null {
  return rt.router.match(request(path))?.payload ?? null;
}

export function upstream(port: number): JsonObject {
  return { type: 'roundrobin', nodes: { [`127.0.0.1:${port}`]: 1 } };
}
