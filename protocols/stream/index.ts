// Stream (L4) protocol entry points for the composition root.
export { createStreamListeners, type StreamListeners, type StreamListenersOptions, type StreamAddress } from './listeners.ts';
export { parseStreamProxyConf, type StreamProxyConf, type TcpListenSpec, type UdpListenSpec, type ParseStreamOptions } from './conf.ts';
export { DEFAULT_TIMEOUTS, type StreamTimeouts } from './options.ts';

import { streamEnabled } from '../../src/config/local.ts';
import type { Listener, ListenerContext, ListenerRegistry } from '../../src/listener/registry.ts';
import type { StreamRuntime } from '../../stream-routes/types.ts';
import type { XrpcRegistry } from '../../stream-routes/xrpc.ts';
import { createStreamListeners as create } from './listeners.ts';
import { parseStreamProxyConf as parse } from './conf.ts';

/** `apisix.stream_proxy` (proxy_mode stream or http&stream): TCP (plain, TLS, PROXY protocol) and UDP. */
export function setup(registry: ListenerRegistry): void {
  registry.register({
    name: 'stream',
    create(ctx: ListenerContext): Listener[] {
      const getRuntime = ctx.runtime<StreamRuntime>('stream');
      if (!streamEnabled(ctx.conf) || getRuntime === null) return [];
      const sp = parse(ctx.conf.apisix.stream_proxy, { proxyProtocol: ctx.conf.apisix.proxy_protocol as never });
      const xrpc = ctx.runtime<XrpcRegistry>('xrpc')?.() ?? undefined;
      const fallbackSni = (ctx.conf.apisix.ssl as { fallback_sni?: string } | undefined)?.fallback_sni;
      const l = create({ ...sp, getRuntime, xrpc, fallbackSni, certificates: ctx.certificates, logger: ctx.logger.child({ module: 'stream' }) });
      return [
        {
          kind: 'stream',
          listen: () => l.listen(),
          close: (o) => l.close(o),
          addresses: () => l.addresses(),
        },
      ];
    },
  });
}
