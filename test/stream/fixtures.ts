// Shared set-up for stream proxy tests: a stream runtime built from StoredItems through the real snapshot
// builder, and stream listeners on loopback ports. The full gateway wiring is tested elsewhere.
import type { StoredItem } from '../../src/config/resources.ts';
import { buildSnapshot } from '../../src/config/snapshot.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { buildCertificateStore, type CertificateStore } from '../../src/tls/store.ts';
import { createStreamListeners, type StreamListeners } from '../../protocols/stream/index.ts';
import type { TcpListenSpec, UdpListenSpec } from '../../protocols/stream/conf.ts';
import type { StreamTimeouts } from '../../protocols/stream/options.ts';
import type { UdpListenerOptions } from '../../protocols/stream/udp.ts';
import { StreamRuntimeBuilder } from '../../stream-routes/runtime.ts';
import type { StreamRuntime } from '../../stream-routes/types.ts';

import { item, registries } from '../helpers/items.ts';

export { item, registries };

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
  // TLS listeners read the shared certificate store, built from the same snapshots as in the gateway.
  let certificates: CertificateStore | null = null;
  const build = (items: StoredItem[]): void => {
    const snap = buildSnapshot(items, ++revision, { plugins });
    if (snap.errors.length > 0) throw new Error(`invalid test config: ${JSON.stringify(snap.errors)}`);
    current = builder.build(snap, current);
    certificates = buildCertificateStore(snap, certificates, silentLogger);
  };
  build(opts.items);
  const listeners = createStreamListeners({
    tcp: opts.tcp ?? [],
    udp: opts.udp ?? [],
    getRuntime: () => current,
    certificates: () => certificates,
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
