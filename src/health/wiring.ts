// Health and discovery wiring for one gateway process, by role:
// - 'all' (single process): a HealthManager in-process, synced from the RuntimeManager's snapshots (follow()).
// - 'primary' (cluster): the HealthManager and its own snapshot feed; changes are broadcast to the workers,
//   which forward passive reports back. Checkers run here only, so probes do not grow with workers.
// - 'worker': a HealthReplica fed by the primary.
// The control API runs where the HealthManager runs (control-api.ts, control-v1.ts, control-discovery.ts say
// where each answer's data comes from with workers). DNS discovery is registered in every process.
import type { ConfigStore } from '../config/store.ts';
import type { Snapshot } from '../config/snapshot.ts';
import { configProvider, type LocalConfig } from '../config/local.ts';
import type { Logger } from '../observability/logger.ts';
import type { PluginRegistry } from '../plugin/registry.ts';
import { ALL_HEALTHY, type BalancerRegistry, type HealthView } from '../upstream/balancer.ts';
import { discoveryProviders } from '../upstream/discovery.ts';
import { DnsCache } from '../upstream/dns.ts';
import type { JsonObject } from '../config/resources.ts';
import { addHealthRoutes, ControlServer } from './control-api.ts';
import { addDiscoveryRoutes, DiscoveryMirror } from './control-discovery.ts';
import { addV1Routes } from './control-v1.ts';
import { DnsDiscovery } from './discovery-dns.ts';
import { attachPrimary, attachWorker, sendToPrimary } from './ipc.ts';
import { HealthManager, outcomesOf, type HealthService } from './manager.ts';
import { HealthReplica } from './replica.ts';
import { SnapshotFeed } from './snapshot-feed.ts';

export interface HealthWiringOptions {
  readonly role: 'all' | 'primary' | 'worker';
  /** False when this process and its workers serve no traffic (control_plane deployment). */
  readonly dataPlane: boolean;
  readonly conf: LocalConfig;
  readonly store: ConfigStore;
  readonly plugins: PluginRegistry;
  /** The Control API's PUT /v1/plugins/reload: re-read config.yaml's plugin lists (the SIGHUP reload). */
  readonly reloadPlugins: () => void;
  readonly balancers: BalancerRegistry;
  readonly logger: Logger;
}

/** The snapshot source of a single-process gateway (RuntimeManager). */
export interface SnapshotSource {
  on(event: 'swap', listener: () => void): unknown;
  readonly snapshot: Snapshot | null;
}

export interface HealthWiring {
  readonly manager: HealthManager | null;
  /**
   * For HttpRuntimeDeps.health / StreamRuntimeDeps.health; undefined when health is off in this process.
   * Also a HealthView (every node healthy) so that deps still typed `HealthView` keep working unchanged.
   */
  readonly view: (((key: string, conf: JsonObject) => HealthView) & HealthView) | undefined;
  /** For the HTTP handler's `outcomes` option. */
  readonly outcomes: ReturnType<typeof outcomesOf> | undefined;
  /** 'all' role: sync checkers with every snapshot `source` publishes. Call before source starts. */
  follow(source: SnapshotSource): void;
  /** The plugin set changed: the primary rebuilds its snapshot in full (the 'all' role follows its source). */
  refresh(): void;
  controlPort(): number | null;
  close(): Promise<void>;
}

export async function setupHealth(opts: HealthWiringOptions): Promise<HealthWiring> {
  const { conf, logger } = opts;
  const closers: (() => void | Promise<void>)[] = [];
  const dns = DnsDiscovery.fromConfig(conf.discovery, logger.child({ module: 'discovery' }));
  if (dns !== null) {
    discoveryProviders.set(dns);
    closers.push(() => {
      discoveryProviders.delete(dns);
      dns.close();
    });
  }

  let manager: HealthManager | null = null;
  let service: HealthService | null = null;
  let control: ControlServer | null = null;
  let controlPort: number | null = null;
  let snapshotOf: () => Snapshot | null = () => null;
  let feed: SnapshotFeed | null = null;
  const mirror = conf.apisix.enable_control && opts.role === 'primary' ? new DiscoveryMirror(discoveryProviders, logger.child({ module: 'discovery' })) : null;
  if (mirror !== null) closers.push(() => mirror.close());
  const disabled = conf.apisix.disable_upstream_healthcheck;
  if (opts.dataPlane && opts.role === 'worker') {
    const replica = new HealthReplica(sendToPrimary);
    closers.push(attachWorker(replica));
    if (!disabled) service = replica;
  } else if (opts.dataPlane) {
    // Hostname nodes are checked at the addresses they resolve to, like the data plane uses them.
    const resolver = new DnsCache({ servers: conf.apisix.dns_resolver as string[] | undefined });
    const m = new HealthManager({
      balancers: opts.balancers,
      logger: logger.child({ module: 'health' }),
      dns: resolver,
      disabled,
    });
    manager = m;
    if (!disabled) service = m;
    closers.push(() => {
      m.close();
      resolver.close();
    });
    if (opts.role === 'primary') {
      closers.push(attachPrimary(m));
      const skipUnknown = configProvider(conf) === 'etcd';
      const onSnapshot = (s: Snapshot): void => {
        m.sync(s);
        mirror?.sync(s);
      };
      const f = new SnapshotFeed(opts.store, opts.plugins, onSnapshot, logger.child({ module: 'health' }), skipUnknown);
      feed = f;
      snapshotOf = () => f.snapshot;
      f.start();
      closers.push(() => f.stop());
    }
    if (conf.apisix.enable_control) {
      const c = new ControlServer(conf.apisix.control.ip, conf.apisix.control.port, logger.child({ module: 'control' }));
      addHealthRoutes(c, m);
      addV1Routes(c, { snapshot: () => snapshotOf(), plugins: opts.plugins, reloadPlugins: opts.reloadPlugins });
      addDiscoveryRoutes(c, discoveryProviders);
      controlPort = await c.listen();
      control = c;
    }
  }
  const svc = service;
  return {
    manager,
    view: svc === null ? undefined : Object.assign((key: string, c: JsonObject) => svc.view(key, c), ALL_HEALTHY),
    outcomes: svc === null ? undefined : outcomesOf(svc),
    follow: (source) => {
      const m = manager;
      if (m === null) return;
      snapshotOf = () => source.snapshot;
      source.on('swap', () => {
        const s = source.snapshot;
        if (s !== null) m.sync(s);
      });
    },
    refresh: () => feed?.refresh(),
    controlPort: () => controlPort,
    close: async () => {
      await control?.close();
      for (const c of closers.reverse()) await c();
    },
  };
}
