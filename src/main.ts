// Composition root: the only src/ file that imports protocols/ and stream-routes/. Wires the config store,
// runtime manager, Admin/status/control APIs and listeners, and runs the worker processes.
import cluster from 'node:cluster';
import { createAdminServer, type AdminServer } from './admin/server.ts';
import { uiSourcesFor } from './admin/ui/live.ts';
import {
  configProvider,
  httpEnabled,
  standaloneFile,
  streamEnabled,
  workerCount,
  type LocalConfig,
} from './config/local.ts';
import { fieldCodecFromConfig, fileStoreCodecFromConfig, lookupFromPluginDefs } from './config/encryption.ts';
import type { ConfigStore } from './config/store.ts';
import { EtcdStore } from './config/store-etcd.ts';
import { FileStore } from './config/store-file.ts';
import { getLogger, type Logger } from './observability/logger.ts';
import { enableClusterMetrics, gatewayMetrics } from './observability/metrics.ts';
import { createMetricsExporter, exporterOptionsFromAttr, type MetricsExporter } from './observability/metrics-exporter.ts';
import { closeRedisCounters } from './plugin/counters/redis.ts';
import { attachCounterPrimary } from './plugin/counters/cluster.ts';
import type { HealthManager } from './health/manager.ts';
import { setupHealth } from './health/wiring.ts';
import { PluginRegistry } from './plugin/registry.ts';
import { upstreamCallers } from './plugin/terminals.ts';
import { setupBuiltinPlugins, enablePlugins } from './plugin/builtin/index.ts';
import { redirectAttr } from './plugin/builtin/redirect.ts';
import { HttpRuntimeBuilder } from './runtime/http-runtime.ts';
import { RuntimeManager } from './runtime/manager.ts';
import { createStatusServer, type StatusServer } from './runtime/status-server.ts';
import type { HttpRuntime } from './runtime/types.ts';
import { BalancerRegistry } from './upstream/balancer.ts';
import { setupBalancers } from './upstream/balancers.ts';
import { VERSION } from './version.ts';
import { Reloader, applyLive, writePidFile, type LiveConfig, type ReloadOutcome } from './reload.ts';
import { followPluginList, publishPluginList, type PluginLists } from './config/plugin-list.ts';
import { SwitchyardError } from './errors.ts';
import { precompileSchemas } from './schema/warm.ts';
import { ListenerRegistry, type Listener, type ListenerAddress, type ListenerContext } from './listener/registry.ts';
import { AccessLog, accessLogOptions } from './pipeline/access-log.ts';
import { HttpPipeline } from './pipeline/pipeline.ts';
import { TlsRuntimeBuilder, type CertificateStore } from './tls/store.ts';
import { setup as setupHttpListeners } from '../protocols/http/index.ts';
import { setup as setupStreamListeners } from '../protocols/stream/index.ts';
import { setup as setupDubbo } from '../protocols/dubbo/index.ts';
import { setup as setupHttp3Listeners } from '../protocols/http3/index.ts';
import { StreamRuntimeBuilder } from '../stream-routes/runtime.ts';
import { XrpcRegistry } from '../stream-routes/xrpc.ts';

/** What protocols/<name>/index.ts `setup` functions register into. */
interface ProtocolRegistries {
  readonly listeners: ListenerRegistry;
  /** L7-over-L4 protocols of stream routes (`protocol.name`). */
  readonly xrpc: XrpcRegistry;
}

/** Every protocol folder's registration: one line each. */
const PROTOCOL_SETUPS: readonly ((r: ProtocolRegistries) => void)[] = [
  (r) => setupHttpListeners(r.listeners),
  (r) => setupHttp3Listeners(r.listeners),
  (r) => setupStreamListeners(r.listeners),
  (r) => setupDubbo(r.xrpc, upstreamCallers),
];

export type GatewayRole = 'all' | 'primary' | 'worker';

export interface StartOptions {
  config: LocalConfig;
  /** config.yaml path (standalone file and admin key live next to it). */
  configFile: string;
  role?: GatewayRole;
  logger?: Logger;
  /**
   * Re-reads config.yaml and applies its live keys (the CLI passes its SIGHUP Reloader, which also reaches the
   * workers); the Admin API's PUT /plugins/reload and the Control API's PUT /v1/plugins/reload call it.
   * Default: a Reloader of this process alone.
   */
  reload?: () => Promise<ReloadOutcome>;
}

export interface Gateway {
  readonly store: ConfigStore | null;
  readonly manager: RuntimeManager | null;
  readonly plugins: PluginRegistry;
  /** The health checkers of this process ('all' and cluster primary), null in workers. */
  readonly health: HealthManager | null;
  /**
   * Applies a reload's live part to this process (plugin lists, plugin_attr), then rebuilds what they shape
   * (runtimes, the cluster primary's snapshot). A plugin list followed from etcd stays in force. Returns the
   * listed plugins that are not available.
   */
  applyLive(next: LiveConfig): string[];
  /** Control API port (127.0.0.1:9090 by default), null when not running in this process. */
  controlPort(): number | null;
  /** Bound addresses of every listener of this process ('http', 'https', 'tcp', 'udp', ...). */
  addresses(): ListenerAddress[];
  adminPort(): number | null;
  statusPort(): number | null;
  close(opts?: { graceful?: boolean }): Promise<void>;
}

function createStore(conf: LocalConfig, configFile: string, writable: boolean, logger: Logger, plugins?: PluginRegistry): ConfigStore {
  const provider = configProvider(conf);
  if (provider === 'etcd') {
    const e = conf.deployment.etcd;
    const lookup = plugins ? lookupFromPluginDefs((name) => plugins.known(name)) : undefined;
    return new EtcdStore({
      hosts: e.host,
      prefix: e.prefix,
      timeoutSec: e.timeout,
      user: e.user,
      password: e.password,
      tls: e.tls,
      logger: logger.child({ module: 'etcd' }),
      startupRetries: typeof e.startup_retry === 'number' ? e.startup_retry : undefined,
      codec: fieldCodecFromConfig(conf.apisix, lookup),
    });
  }
  const lookup = plugins ? lookupFromPluginDefs((name) => plugins.known(name)) : undefined;
  return new FileStore({
    path: standaloneFile(conf, configFile),
    logger: logger.child({ module: 'standalone' }),
    writable,
    // Auth fields (encrypt_fields) are stored AES-encrypted in the file too, as APISIX does in etcd.
    codec: fileStoreCodecFromConfig(conf.apisix, lookup),
  });
}

/** Starts the parts of the gateway this process runs. Resolves once listeners are bound. */
export async function startGateway(opts: StartOptions): Promise<Gateway> {
  const conf = opts.config;
  const role = opts.role ?? 'all';
  const logger = opts.logger ?? getLogger('gateway');
  const deployRole = conf.deployment.role;
  const runsDataPlane = role !== 'primary' && deployRole !== 'control_plane';
  const runsAdmin = role !== 'worker' && deployRole !== 'data_plane' && conf.apisix.enable_admin;

  const plugins = new PluginRegistry();
  setupBuiltinPlugins(plugins);
  const unknownPlugins = enablePlugins(plugins, conf.plugins, conf.stream_plugins);
  if (unknownPlugins.length > 0) logger.warn({ plugins: unknownPlugins }, 'plugins listed in config.yaml are not available; skipped');
  precompileSchemas([...plugins.all('http'), ...plugins.all('stream')].map((def) => ({ name: def.name, def })));
  const balancers = new BalancerRegistry();
  setupBalancers(balancers);

  // The Admin API writes through the primary's store; data-plane processes follow the backend themselves.
  const writable = runsAdmin && configProvider(conf) === 'yaml' && deployRole === 'traditional';
  const store = createStore(conf, opts.configFile, writable, logger, plugins);
  await store.start();

  const closers: (() => Promise<void>)[] = [];
  let manager: RuntimeManager | null = null;
  const listeners: Listener[] = [];
  let admin: AdminServer | null = null;
  let status: StatusServer | null = null;
  let statusPort: number | null = null;
  let exporter: MetricsExporter | null = null;

  // Set once health is wired; reloads start from requests to servers that may listen before that.
  let refreshHealth: (() => void) | null = null;
  const refresh = (): void => {
    manager?.refresh();
    refreshHealth?.();
  };

  // APISIX's `<prefix>/plugins` key (config/plugin-list.ts): nodes with the Admin API write it, the others run it.
  const pluginKey = store instanceof EtcdStore ? store : null;
  let followed: PluginLists | null = null;
  if (pluginKey !== null && !(deployRole !== 'data_plane' && conf.apisix.enable_admin)) {
    followPluginList(pluginKey, (lists) => {
      followed = lists;
      const missing = enablePlugins(plugins, lists.http, lists.stream);
      refresh();
      return missing;
    }, logger.child({ module: 'plugins' }));
  }
  // plugin_attr as plugin instances read it: redirect also gets the ssl.listen ports (APISIX get_port). One
  // object for the runtime builder, refilled on a live reload before the runtimes are rebuilt.
  const pluginAttrs: Record<string, Record<string, unknown>> = {};
  const syncPluginAttrs = (): void => {
    for (const k of Object.keys(pluginAttrs)) delete pluginAttrs[k];
    Object.assign(pluginAttrs, conf.plugin_attr, { redirect: redirectAttr(conf.plugin_attr.redirect, conf.apisix.ssl) });
  };
  syncPluginAttrs();
  const applyConf = (next: LiveConfig): string[] => {
    const f = followed;
    const missing = applyLive(conf, next, {
      plugins,
      refresh: () => {
        if (f !== null) enablePlugins(plugins, f.http, f.stream);
        syncPluginAttrs();
        refresh();
      },
    });
    return f === null ? missing : [];
  };

  // Health checks, service discovery and the control API (src/health/wiring.ts).
  let reload = opts.reload;
  if (reload === undefined) {
    const reloader = new Reloader(opts.configFile, conf, logger.child({ module: 'reload' }));
    reloader.attach(applyConf);
    reload = () => reloader.request();
  }
  const reloadPlugins = reload;
  const health = await setupHealth({
    role,
    dataPlane: deployRole !== 'control_plane',
    conf,
    store,
    plugins,
    reloadPlugins: () => void reloadPlugins(),
    balancers,
    logger,
  });
  refreshHealth = () => health.refresh();

  // A start that fails once the store is open (a port in use, say) closes what it opened before it throws, so
  // an embedder (or a test) that retries leaks no servers, watchers or timers.
  const abandon = async (err: unknown): Promise<never> => {
    await Promise.all(listeners.map((l) => l.close({ graceful: false }).catch(() => undefined)));
    await admin?.close().catch(() => undefined);
    await status?.close().catch(() => undefined);
    await exporter?.close().catch(() => undefined);
    for (const c of closers) await c().catch(() => undefined);
    closeRedisCounters();
    await health.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  };

  if (runsDataPlane) {
    manager = new RuntimeManager(store, plugins, logger.child({ module: 'runtime' }), {
      skipUnknownPlugins: configProvider(conf) === 'etcd',
    });
    const httpBuilder = new HttpRuntimeBuilder({
      plugins, balancers, attrs: pluginAttrs, logger, health: health.view, upstreamClient: conf.switchyard.upstream_http1_client,
    });
    const getHttp = manager.add<HttpRuntime>(httpBuilder);
    const getStream = streamEnabled(conf)
      ? manager.add(new StreamRuntimeBuilder({ plugins, balancers, logger, health: health.view }))
      : null;
    // Every builder is added before start(): the first build must include the certificate store, or SSL
    // objects present at start-up would not be served until the next config change.
    const getCerts = manager.add<CertificateStore>(
      new TlsRuntimeBuilder(logger.child({ module: 'tls' }), {
        protocols: (conf.apisix.ssl as { ssl_protocols?: string } | undefined)?.ssl_protocols,
        ciphers: (conf.apisix.ssl as { ssl_ciphers?: string } | undefined)?.ssl_ciphers,
      }),
    );
    health.follow(manager);
    manager.start();
    closers.push(async () => {
      manager!.stop();
      await httpBuilder.close();
    });
    let pipeline: HttpPipeline | null = null;
    if (httpEnabled(conf)) {
      const accessLog = conf.switchyard.access_log.enable ? new AccessLog(accessLogOptions(conf, opts.configFile)) : null;
      pipeline = new HttpPipeline({
        getRuntime: getHttp as () => HttpRuntime,
        trustedAddresses: conf.apisix.trusted_addresses,
        showUpstreamStatus: conf.apisix.show_upstream_status_in_response_header,
        clientMaxBodySize: conf.switchyard.limits.client_max_body_size,
        serverTokens: conf.apisix.enable_server_tokens,
        uri: { deleteTailSlash: conf.apisix.delete_uri_tail_slash, servlet: conf.apisix.normalize_uri_like_servlet },
        logger: logger.child({ module: 'http' }),
        accessLog,
        outcomes: health.outcomes,
      });
      if (accessLog) closers.push(async () => accessLog.flush());
    }
    const registries: ProtocolRegistries = { listeners: new ListenerRegistry(), xrpc: new XrpcRegistry() };
    for (const setup of PROTOCOL_SETUPS) setup(registries);
    const runtimes = new Map<string, () => unknown>([['xrpc', () => registries.xrpc]]);
    if (getStream !== null) runtimes.set('stream', getStream);
    const lctx: ListenerContext = {
      conf,
      logger,
      http: pipeline,
      certificates: () => (getCerts() as CertificateStore | null) ?? null,
      runtime: <R>(name: string) => (runtimes.get(name) as (() => R) | undefined) ?? null,
    };
    for (const kind of registries.listeners.kinds()) {
      for (const l of kind.create(lctx)) {
        try {
          await l.listen();
        } catch (err) {
          await abandon(new SwitchyardError('SWY_ERR_LISTEN_FAILED', `${kind.name}: ${(err as Error).message}`, { cause: err }));
        }
        listeners.push(l);
      }
    }
  }

  if (runsAdmin) {
    admin = createAdminServer({
      store,
      plugins,
      conf: conf.deployment.admin,
      streamEnabled: streamEnabled(conf),
      // APISIX answers "done" once its workers are told; here the reload has run in this process and been
      // sent to the workers, and an invalid config.yaml is an error rather than a silent no-op. A failed etcd
      // write is logged as APISIX does: this node's reload stands, data planes keep their list.
      onPluginsReload: async () => {
        const outcome = await reloadPlugins();
        if (!outcome.ok) throw new Error(outcome.error);
        if (pluginKey === null) return;
        const log = logger.child({ module: 'plugins' });
        await publishPluginList(pluginKey, plugins, 'set', log).catch((err: unknown) => log.error({ err }, 'cannot write the plugin list to etcd'));
      },
      logger: logger.child({ module: 'admin' }),
      version: VERSION,
      ui: uiSourcesFor(conf, () => health.controlPort()),
    });
    await admin.listen().catch(abandon);
    if (pluginKey !== null) {
      publishPluginList(pluginKey, plugins, 'reset', logger.child({ module: 'plugins' })).catch((err: unknown) =>
        logger.error({ err }, 'cannot sync the plugin list to etcd'),
      );
    }
  }

  // Prometheus scrape endpoint (plugin_attr.prometheus.export_addr): served by the process that does not
  // serve traffic in a cluster (aggregating the workers' registries), or by the single process.
  if (plugins.get('prometheus') !== undefined && deployRole !== 'control_plane') {
    const ex = exporterOptionsFromAttr(conf.plugin_attr.prometheus);
    if (role === 'worker') enableClusterMetrics();
    else if (ex.enabled) {
      gatewayMetrics().setEtcdProbe(() => store.ready);
      exporter = createMetricsExporter({ ip: ex.ip, port: ex.port, path: ex.path, aggregate: role === 'primary' });
      await exporter.listen().catch(abandon);
    }
  }

  if (role !== 'worker') {
    const st = conf.apisix.status;
    status = createStatusServer(st.ip, st.port, {
      notReadyReason: () => {
        if (!store.ready) return 'config store not synced';
        if (manager !== null && !manager.ready) return 'data plane not synced';
        return workersNotReady();
      },
    });
    statusPort = await status.listen().catch(abandon);
  }

  return {
    store,
    manager,
    plugins,
    health: health.manager,
    applyLive: applyConf,
    controlPort: () => health.controlPort(),
    addresses: () => listeners.flatMap((l) => l.addresses()),
    adminPort: () => admin?.address().port ?? null,
    statusPort: () => statusPort,
    close: async ({ graceful = true } = {}) => {
      await Promise.all(listeners.map((l) => l.close({ graceful })));
      await admin?.close();
      await status?.close();
      await exporter?.close();
      for (const c of closers) await c();
      closeRedisCounters();
      await health.close();
      await store.close();
    },
  };
}

let workersNotReady: () => string | null = () => null;

/** CLI entry: one process for worker_processes 1, else a primary supervising N workers. */
export async function runGateway(conf: LocalConfig, configFile: string): Promise<void> {
  const logger = getLogger('gateway');
  // A control plane serves no traffic, so it has nothing for workers to share.
  const n = conf.deployment.role === 'control_plane' ? 1 : workerCount(conf);
  const drainMs = conf.switchyard.limits.graceful_shutdown_timeout * 1000;
  if (cluster.isWorker) return await runWorker(conf, configFile, logger, drainMs);
  // SIGHUP (`switchyard reload`) is handled from the first moment: its default action would end the process.
  const reloader = new Reloader(configFile, conf, logger.child({ module: 'reload' }));
  process.on('SIGHUP', () => void reloader.request());
  if (n <= 1) {
    const gw = await startGateway({ config: conf, configFile, role: 'all', logger, reload: () => reloader.request() });
    logger.info({ listen: gw.addresses(), admin: gw.adminPort(), version: VERSION }, 'switchyard started');
    installSignals(async () => gw.close({ graceful: true }), drainMs);
    writePidFile(configFile, logger);
    reloader.attach((next) => gw.applyLive(next));
    return;
  }

  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const ready = new Set<number>();
  let stopping = false;
  workersNotReady = () => (ready.size < n ? `${n - ready.size} worker(s) not synced` : null);
  // A worker that dies soon after its start (bad config, port taken) is restarted with a growing delay.
  const delays = new Map<number, number>();
  const fork = (slot: number): void => {
    if (stopping) return;
    const started = Date.now();
    const w = cluster.fork({ SWITCHYARD_WORKER_SLOT: String(slot) });
    w.on('message', (m: { type?: string }) => {
      if (m?.type === 'ready') ready.add(slot);
    });
    w.once('exit', (code, signal) => {
      ready.delete(slot);
      if (stopping) return;
      const delay = Date.now() - started < 10_000 ? Math.min(10_000, (delays.get(slot) ?? 100) * 2) : 200;
      delays.set(slot, delay);
      logger.error({ slot, code, signal, restartInMs: delay }, 'worker exited; starting a replacement');
      setTimeout(() => fork(slot), delay).unref();
    });
  };
  const gw = await startGateway({ config: conf, configFile, role: 'primary', logger, reload: () => reloader.request() });
  attachCounterPrimary();
  for (let i = 0; i < n; i++) fork(i);
  logger.info({ workers: n, admin: gw.adminPort(), version: VERSION }, 'switchyard started');
  writePidFile(configFile, logger);
  reloader.attach((next) => {
    for (const w of Object.values(cluster.workers ?? {})) if (w?.isConnected()) w.send({ type: 'reload', next });
    return gw.applyLive(next);
  });
  installSignals(async () => {
    stopping = true;
    const exits = Object.values(cluster.workers ?? {}).map(
      (w) =>
        new Promise<void>((resolve) => {
          if (!w || w.isDead()) return resolve();
          w.once('exit', () => resolve());
          // A worker whose IPC channel is already gone still gets the signal.
          if (w.isConnected()) w.send({ type: 'shutdown' });
          else w.process.kill('SIGTERM');
        }),
    );
    await Promise.all(exits);
    await gw.close({ graceful: true });
  }, drainMs);
}

/**
 * A cluster worker. Shutdown requests (the primary's message, or SIGTERM sent to the worker directly, e.g. by a
 * service manager signalling the whole group) are honoured from the first moment, even during start-up.
 * SIGINT is ignored: a terminal delivers Ctrl-C to every process of the group and the primary coordinates it.
 */
async function runWorker(conf: LocalConfig, configFile: string, logger: Logger, drainMs: number): Promise<void> {
  let gw: Gateway | null = null;
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    hardDeadline(drainMs);
    (gw ? gw.close({ graceful: true }) : Promise.resolve()).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'worker shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', () => undefined);
  // A hang-up of the terminal reaches the whole group; reloads come from the primary (IPC).
  process.on('SIGHUP', () => undefined);
  // A reload sent while this worker starts may postdate its read of config.yaml: applied once started.
  let pending: LiveConfig | null = null;
  process.on('message', (m: { type?: string; next?: LiveConfig }) => {
    if (m?.type === 'shutdown') stop();
    else if (m?.type === 'reload' && m.next) {
      if (gw) gw.applyLive(m.next);
      else pending = m.next;
    }
  });
  const started = await startGateway({ config: conf, configFile, role: 'worker', logger });
  gw = started;
  if (stopping) {
    await started.close({ graceful: false });
    process.exit(0);
  }
  if (pending !== null) started.applyLive(pending);
  const manager = started.manager;
  if (manager === null || manager.ready) process.send?.({ type: 'ready' });
  else manager.once('swap', () => process.send?.({ type: 'ready' }));
}

/** Ends the process if draining takes longer than the listeners' own drain deadline plus a margin. */
function hardDeadline(drainMs: number): void {
  setTimeout(() => {
    getLogger('gateway').error({ afterMs: drainMs + 10_000 }, 'shutdown did not finish; exiting');
    process.exit(1);
  }, drainMs + 10_000).unref();
}

/** SIGTERM/SIGINT: drain and exit 0. A second signal while draining exits at once. */
function installSignals(stop: () => Promise<void>, drainMs: number): void {
  let stopping = false;
  const onSignal = (sig: string) => {
    if (stopping) {
      getLogger('gateway').warn({ signal: sig }, 'second signal while draining; exiting now');
      process.exit(1);
    }
    stopping = true;
    getLogger('gateway').info({ signal: sig }, 'draining');
    hardDeadline(drainMs);
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        getLogger('gateway').error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}
