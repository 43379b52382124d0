// Dubbo 2 protocol entry points: the L4 proxy registers as the xRPC protocol "dubbo" (stream routes with
// `protocol: {name: "dubbo"}`); callDubbo/DubboPool are the API for HTTP-to-Dubbo plugins.
import type { XrpcRegistry } from '../../stream-routes/xrpc.ts';
import { DubboProxy, type DubboProxyOptions } from './proxy.ts';

export { callDubbo, DubboPool, type DubboCall, type DubboPoolOptions, type DubboResult } from './pool.ts';
export { callChannel } from './proxy.ts';

/** Registers the "dubbo" xRPC protocol; the composition root calls it once. */
export function setup(registry: XrpcRegistry, opts: Omit<DubboProxyOptions, 'logger'> = {}): void {
  registry.register({ name: 'dubbo', create: ({ logger }) => new DubboProxy({ ...opts, logger }) });
}
