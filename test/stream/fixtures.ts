// Shared set-up for stream proxy tests: a stream runtime built from StoredItems through the real snapshot
// builder, and stream listeners on loopback ports. The full gateway wiring is tested elsewhere.
import type { JsonObject, Kind, StoredItem } from '../../src/config/resources.ts';
import { buildSnapshot } from '../../src/config/snapshot.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { setupBuiltinPlugins } from '../../src/plugin/builtin/index.ts';
import { PluginRegistry } from '../../src/plugin/registry.ts';
import { BalancerRegistry } from '../../src/upstream/balancer.ts';
import { setupBalancers } from '../../src/upstream/balancers.ts';
import { createStreamListeners, type StreamListeners } from '../../protocols/stream/index.ts';
import type { TcpListenSpec, UdpListenSpec } from '../../protocols/stream/conf.ts';
import type { StreamTimeouts } from '../../protocols/stream/options.ts';
import type { UdpListenerOptions } from '../../protocols/stream/udp.ts';
import { StreamRuntimeBuilder } from '../../stream-routes/runtime.ts';
import type { StreamRuntime } from '../../stream-routes/types.ts';

let seq = 0;

export function item(kind: Kind, id: string, value: JsonObject): StoredItem {
  seq++;
  return { kind, id, key: `/apisix/${kind}/${id}`, value, createdIndex: seq, modifiedIndex: seq };
}

export function registries(): { plugins: PluginRegistry; balancers: BalancerRegistry } {
  const plugins = new PluginRegistry();
  setupBuiltinPlugins(plugins);
  const balancers = new BalancerRegistry();
  setupBalancers(balancers);
  return { plugins, balancers };
}

export interface TestProxy {
  readonly listeners: StreamListeners;
  readonly builder: StreamRuntimeBuilder;
  runtime(): StreamRuntime;
  /** Rebuilds the runtime from a new item set (a config change). */
  setItems(items: StoredItem[]): void;
  close(): Promise<void>;
}

export async function startProxy(opts: {
  items: StoredItem[];
  tcp?: TcpListenSpec[];
  udp?: UdpListenSpec[];
  timeouts?: Partial<StreamTimeouts>;
  udpOptions?: UdpListenerOptions;
}): Promise<TestProxy> {
  const { plugins, balancers } = registries();
  const builder = new StreamRuntimeBuilder({ plugins, balancers, logger: silentLogger });
  let revision = 0;
  let current: StreamRuntime | null = null;
  const build = (items: StoredItem[]): void => {
    const snap = buildSnapshot(items, ++revision, { plugins });
    if (snap.errors.length > 0) throw new Error(`invalid test config: ${JSON.stringify(snap.errors)}`);
    current = builder.build(snap, current);
  };
  build(opts.items);
  const listeners = createStreamListeners({
    tcp: opts.tcp ?? [],
    udp: opts.udp ?? [],
    getRuntime: () => current,
    logger: silentLogger,
    timeouts: { drainMs: 200, ...opts.timeouts },
    udpOptions: opts.udpOptions,
  });
  await listeners.listen();
  return {
    listeners,
    builder,
    runtime: () => current!,
    setItems: build,
    close: async () => {
      await listeners.close({ graceful: false });
      builder.close();
    },
  };
}
