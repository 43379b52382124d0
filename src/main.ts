// Composition root: the only src/ file that imports protocols/ and stream-routes/. Wires the config store,
// runtime manager, Admin/status/control APIs and listeners, and runs the worker processes.
import cluster from 'node:cluster';
import { createAdminServer, type AdminServer } from './admin/server.ts';
import {
  configProvider,
  httpEnabled,
  standaloneFile,
  streamEnabled,
  workerCount,
  type ListenEntry,
  type LocalConfig,
} from './config/local.ts';
import type { ConfigStore } from './config/store.ts';
import { EtcdStore } from './config/store-etcd.ts';
import { FileStore } from './config/store-file.ts';
import { getLogger, type Logger } from './observability/logger.ts';
import { PluginRegistry } from './plugin/registry.ts';
import { setupBuiltinPlugins, enablePlugins } from './plugin/builtin/index.ts';
import { HttpRuntimeBuilder } from './runtime/http-runtime.ts';
import { RuntimeManager } from './runtime/manager.ts';
import { createStatusServer, type StatusServer } from './runtime/status-server.ts';
import type { HttpRuntime } from './runtime/types.ts';
import { BalancerRegistry } from './upstream/balancer.ts';
import { setupBalancers } from './upstream/balancers.ts';
import { VERSION } from './version.ts';
import { HttpHandler } from '../protocols/http/handler.ts';
import { createHttpListener, type Listener } from '../protocols/http/listener.ts';
import { UpgradeHandler } from '../protocols/http/upgrade.ts';
import { AccessLog } from '../protocols/http/access-log.ts';
import { createStreamListeners, parseStreamProxyConf } from '../protocols/stream/index.ts';
import { StreamRuntimeBuilder } from '../stream-routes/runtime.ts';

export type GatewayRole = 'all' | 'primary' | 'worker';

export interface StartOptions {
  config: LocalConfig;
  /** config.yaml path (standalone file and admin key live next to it). */
  configFile: string;
  role?: GatewayRole;
  logger?: Logger;
}

export interface Gateway {
  readonly store: ConfigStore | null;
  readonly manager: RuntimeManager | null;
  readonly plugins: PluginRegistry;
  httpAddresses(): { host: string; port: number }[];
  streamAddresses(): { protocol: 'tcp' | 'udp'; host: string; port: number }[];
  adminPort(): number | null;
  statusPort(): number | null;
  close(opts?: { graceful?: boolean }): Promise<void>;
}

function createStore(conf: LocalConfig, configFile: string, writable: boolean, logger: Logger): ConfigStore {
  const provider = configProvider(conf);
  if (provider === 'etcd') {
    const e = conf.deployment.etcd;
    return new EtcdStore({
      hosts: e.host,
      prefix: e.prefix,
      timeoutSec: e.timeout,
      user: e.user,
      password: e.password,
      tls: e.tls,
      logger: logger.child({ component: 'etcd' }),
    });
  }
  return new FileStore({
    path: standaloneFile(conf, configFile),
    logger: logger.child({ component: 'standalone' }),
    writable,
  });
}

function listenAddr(e: ListenEntry): { host: string; port: number; h2?: boolean } {
  return typeof e === 'number' ? { host: '0.0.0.0', port: e } : { host: e.ip ?? '0.0.0.0', port: e.port, h2: e.enable_http2 };
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
  const balancers = new BalancerRegistry();
  setupBalancers(balancers);

  // The Admin API writes through the primary's store; data-plane processes follow the backend themselves.
  const writable = runsAdmin && configProvider(conf) === 'yaml' && deployRole === 'traditional';
  const store = createStore(conf, opts.configFile, writable, logger);
  await store.start();

  const closers: (() => Promise<void>)[] = [];
  let manager: RuntimeManager | null = null;
  const httpListeners: Listener[] = [];
  let stream: ReturnType<typeof createStreamListeners> | null = null;
  let admin: AdminServer | null = null;
  let status: StatusServer | null = null;
  let statusPort: number | null = null;

  if (runsDataPlane) {
    manager = new RuntimeManager(store, plugins, logger.child({ component: 'runtime' }));
    const httpBuilder = new HttpRuntimeBuilder({ plugins, balancers, attrs: conf.plugin_attr, logger });
    const getHttp = manager.add<HttpRuntime>(httpBuilder);
    const getStream = streamEnabled(conf)
      ? manager.add(new StreamRuntimeBuilder({ plugins, balancers, logger }))
      : null;
    manager.start();
    closers.push(async () => {
      manager!.stop();
      await httpBuilder.close();
    });

    if (httpEnabled(conf)) {
      const accessLog = conf.switchyard.access_log.enable ? new AccessLog(conf.switchyard.access_log.path) : null;
      const handler = new HttpHandler({
        getRuntime: getHttp as () => HttpRuntime,
        trustedAddresses: conf.apisix.trusted_addresses,
        showUpstreamStatus: conf.apisix.show_upstream_status_in_response_header,
        clientMaxBodySize: conf.switchyard.limits.client_max_body_size,
        serverTokens: conf.apisix.enable_server_tokens,
        logger: logger.child({ component: 'http' }),
        accessLog,
      });
      const upgrade = new UpgradeHandler(handler, logger.child({ component: 'websocket' }));
      for (const entry of conf.apisix.node_listen) {
        const a = listenAddr(entry);
        const l = createHttpListener({
          host: a.host,
          port: a.port,
          h2c: a.h2 ?? conf.apisix.enable_http2,
          limits: conf.switchyard.limits,
          handler,
          upgrade,
          logger,
        });
        await l.listen();
        httpListeners.push(l);
      }
      if (accessLog) closers.push(async () => accessLog.flush());
    }
    if (getStream !== null) {
      const sp = parseStreamProxyConf(conf.apisix.stream_proxy, { proxyProtocol: conf.apisix.proxy_protocol as never });
      stream = createStreamListeners({ ...sp, getRuntime: getStream as never, logger: logger.child({ component: 'stream' }) });
      await stream.listen();
    }
  }

  if (runsAdmin) {
    admin = createAdminServer({
      store,
      plugins,
      conf: conf.deployment.admin,
      streamEnabled: streamEnabled(conf),
      onPluginsReload: async () => {
        enablePlugins(plugins, conf.plugins, conf.stream_plugins);
        manager?.refresh();
      },
      logger: logger.child({ component: 'admin' }),
      version: VERSION,
    });
    await admin.listen();
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
    statusPort = await status.listen();
  }

  return {
    store,
    manager,
    plugins,
    httpAddresses: () => httpListeners.map((l) => l.address()),
    streamAddresses: () => stream?.addresses() ?? [],
    adminPort: () => admin?.address().port ?? null,
    statusPort: () => statusPort,
    close: async ({ graceful = true } = {}) => {
      await Promise.all(httpListeners.map((l) => l.close({ graceful })));
      await stream?.close({ graceful });
      await admin?.close();
      await status?.close();
      for (const c of closers) await c();
      await store.close();
    },
  };
}

let workersNotReady: () => string | null = () => null;

/** CLI entry: one process for worker_processes 1, else a primary supervising N workers. */
export async function runGateway(conf: LocalConfig, configFile: string): Promise<void> {
  const logger = getLogger('gateway');
  const n = workerCount(conf);
  if (cluster.isWorker) {
    const gw = await startGateway({ config: conf, configFile, role: 'worker', logger });
    gw.manager?.once('swap', () => process.send?.({ type: 'ready' }));
    if (gw.manager?.ready) process.send?.({ type: 'ready' });
    const stop = async () => {
      await gw.close({ graceful: true });
      process.exit(0);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', () => undefined);
    process.on('message', (m: { type?: string }) => {
      if (m?.type === 'shutdown') void stop();
    });
    return;
  }
  if (n <= 1) {
    const gw = await startGateway({ config: conf, configFile, role: 'all', logger });
    logger.info({ http: gw.httpAddresses(), admin: gw.adminPort(), version: VERSION }, 'switchyard started');
    installSignals(async () => gw.close({ graceful: true }));
    return;
  }

  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const ready = new Set<number>();
  let stopping = false;
  workersNotReady = () => (ready.size < n ? `${n - ready.size} worker(s) not synced` : null);
  const fork = (slot: number): void => {
    const w = cluster.fork({ SWITCHYARD_WORKER_SLOT: String(slot) });
    w.on('message', (m: { type?: string }) => {
      if (m?.type === 'ready') ready.add(slot);
    });
    w.once('exit', (code, signal) => {
      ready.delete(slot);
      if (stopping) return;
      logger.error({ slot, code, signal }, 'worker exited; starting a replacement');
      setTimeout(() => fork(slot), 200);
    });
  };
  const gw = await startGateway({ config: conf, configFile, role: 'primary', logger });
  for (let i = 0; i < n; i++) fork(i);
  logger.info({ workers: n, admin: gw.adminPort(), version: VERSION }, 'switchyard started');
  installSignals(async () => {
    stopping = true;
    const exits = Object.values(cluster.workers ?? {}).map(
      (w) =>
        new Promise<void>((resolve) => {
          if (!w || w.isDead()) return resolve();
          w.once('exit', () => resolve());
          w.send({ type: 'shutdown' });
        }),
    );
    await Promise.all(exits);
    await gw.close({ graceful: true });
  });
}

function installSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (sig: string) => {
    if (stopping) return;
    stopping = true;
    getLogger('gateway').info({ signal: sig }, 'draining');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        getLogger('gateway').error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
}
