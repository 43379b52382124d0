// Service discovery contract: an upstream with `discovery_type` (and no `nodes`) takes its nodes from the
// provider registered under that type. Providers are configured by the composition root from config.yaml
// `discovery` and registered process-wide, because every UpstreamRuntime of the process (HTTP, stream,
// health checkers) must see the same nodes for the same service.
import type { JsonObject } from '../config/resources.ts';
import type { NodeSpec } from './endpoints.ts';

export interface NodeSource {
  /** The current nodes (IP hosts), undefined until the first answer. */
  nodes(): readonly NodeSpec[] | undefined;
  /** `listener` runs whenever nodes() changes; the returned function unsubscribes (the last one stops refreshes). */
  watch(listener: () => void): () => void;
  /** Settles after the first answer or failure. */
  ready(): Promise<void>;
}

export interface DiscoveryProvider {
  readonly type: string;
  /** The node source of an upstream (`service_name`, `discovery_args`, `scheme`); throws on an invalid name. */
  source(upstream: JsonObject): NodeSource;
  /** What the provider currently resolves, for the Control API's GET /v1/discovery/<type>/dump. */
  dump?(): JsonObject;
}

export class DiscoveryRegistry {
  private readonly providers = new Map<string, DiscoveryProvider>();

  /** Registers `provider`, replacing any provider of the same type (config reload, tests). */
  set(provider: DiscoveryProvider): void {
    this.providers.set(provider.type, provider);
  }

  /** Unregisters `provider` if it is still the one registered for its type. */
  delete(provider: DiscoveryProvider): void {
    if (this.providers.get(provider.type) === provider) this.providers.delete(provider.type);
  }

  get(type: string): DiscoveryProvider | undefined {
    return this.providers.get(type);
  }
}

/** The process-wide providers (see the module comment). */
export const discoveryProviders = new DiscoveryRegistry();

/** The node source of `upstream`, or null when it does not use discovery or its type has no provider. */
export function discoverySource(upstream: JsonObject, registry: DiscoveryRegistry): NodeSource | null {
  const type = upstream.discovery_type;
  if (typeof type !== 'string' || upstream.nodes !== undefined) return null;
  return registry.get(type)?.source(upstream) ?? null;
}
