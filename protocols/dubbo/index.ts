// Dubbo 2 protocol entry points: the L4 proxy registers as the xRPC protocol "dubbo" (stream routes with
// `protocol: {name: "dubbo"}`); the HTTP-to-Dubbo plugins (dubbo-proxy, http-dubbo) reach the provider pool
// through the "dubbo" upstream caller (src/plugin/terminals.ts). callDubbo/DubboPool are the typed API.
import type { UpstreamCallers } from '../../src/plugin/terminals.ts';
import type { XrpcRegistry } from '../../stream-routes/xrpc.ts';
import { DubboProxy, type DubboProxyOptions } from './proxy.ts';
import { dubboUpstreamCaller } from './upstream-caller.ts';

export { callDubbo, DubboPool, type DubboCall, type DubboPoolOptions, type DubboResult } from './pool.ts';
export { callChannel } from './proxy.ts';
export { DubboUpstreamCaller, dubboUpstreamCaller } from './upstream-caller.ts';

/** Registers the "dubbo" xRPC protocol and, when given the registry, the HTTP plugins' "dubbo" caller. */
export function setup(registry: XrpcRegistry, callers?: UpstreamCallers, opts: Omit<DubboProxyOptions, 'logger'> = {}): void {
  registry.register({ name: 'dubbo', create: ({ logger }) => new DubboProxy({ ...opts, logger }) });
  callers?.register('dubbo', dubboUpstreamCaller);
}
