// GET /v1/discovery/<type>/dump: what a discovery provider of this process resolved (APISIX's discovery
// modules answer their `dump_data()` there; DNS has none in APISIX, so the shape follows consul's:
// {config, services: {<service_name>: nodes}}).
//
// Where the data comes from: providers are process-wide (src/upstream/discovery.ts) and resolve only the
// services some upstream of the process watches. A single process's runtime watches every discovery upstream
// of its snapshot. With workers, the control server runs in the primary, whose own upstreams are only those
// its health checkers need; DiscoveryMirror makes the primary watch every discovery upstream of its snapshot
// too, so the dump lists the services the workers resolve (against the same servers, refreshed on the same
// TTLs: the same nodes, give or take a refresh in flight).
import type { Snapshot } from '../config/snapshot.ts';
import type { Logger } from '../observability/logger.ts';
import { discoverySource, type DiscoveryRegistry, type NodeSource } from '../upstream/discovery.ts';
import { notFound, type ControlServer } from './control-api.ts';
import { upstreamConfs } from './keys.ts';

export function addDiscoveryRoutes(server: ControlServer, registry: DiscoveryRegistry): void {
  server.route('/v1/discovery', (rest) => {
    const m = /^\/([^/]+)\/dump$/.exec(rest);
    if (m === null) return notFound();
    const provider = registry.get(m[1]!);
    if (provider?.dump === undefined) return notFound(`discovery[${m[1]}] not found`);
    return { status: 200, body: provider.dump() };
  });
}

const NOOP = (): void => {};

/** Keeps a watch on the node source of every discovery upstream of the latest snapshot (see above). */
export class DiscoveryMirror {
  private readonly registry: DiscoveryRegistry;
  private readonly logger: Logger;
  private watched = new Map<NodeSource, () => void>();

  constructor(registry: DiscoveryRegistry, logger: Logger) {
    this.registry = registry;
    this.logger = logger;
  }

  sync(snapshot: Snapshot): void {
    const next = new Map<NodeSource, () => void>();
    for (const [key, conf] of upstreamConfs(snapshot)) {
      let source: NodeSource | null;
      try {
        source = discoverySource(conf, this.registry);
      } catch (err) {
        this.logger.warn({ key, err: (err as Error).message }, 'discovery: cannot follow upstream');
        continue;
      }
      if (source === null || next.has(source)) continue;
      next.set(source, this.watched.get(source) ?? source.watch(NOOP));
    }
    // Unwatch after the new watches are in place, so a source kept across snapshots never drops to zero.
    for (const [source, unwatch] of this.watched) if (!next.has(source)) unwatch();
    this.watched = next;
  }

  close(): void {
    for (const unwatch of this.watched.values()) unwatch();
    this.watched.clear();
  }
}
