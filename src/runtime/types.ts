// What a listener reads per request: the data-plane runtime built from one config snapshot.
// Runtimes are immutable once published; a request pins the runtime current at accept time.
import type { JsonObject } from '../config/resources.ts';
import type { ErrorCode } from '../errors.ts';
import type { ConsumerRef } from '../plugin/context.ts';
import type { PluginChain } from '../plugin/chain.ts';
import type { Router } from '../router/router.ts';
import type { UpstreamRuntime } from '../upstream/upstream.ts';

export interface TimeoutConf {
  readonly connect: number;
  readonly send: number;
  readonly read: number;
}

export interface HttpRoute {
  readonly id: string;
  readonly name: string | undefined;
  readonly serviceId: string | undefined;
  readonly serviceName: string | undefined;
  /** Route upstream, else upstream_id, else the service's; null when none is configured. */
  readonly upstream: UpstreamRuntime | null;
  readonly chain: PluginChain;
  /** Merged route plugins (service < plugin_config < route), the base for consumer merges. */
  readonly plugins: JsonObject;
  readonly enableWebsocket: boolean;
  /** The route's timeout, overriding the upstream's. */
  readonly timeout: TimeoutConf | null;
  /** A reference that could not be resolved: answered at request time with its catalog entry; `detail` is logged. */
  readonly broken: { readonly code: ErrorCode; readonly detail: string } | null;
}

export interface HttpRuntime {
  readonly revision: number;
  readonly router: Router<HttpRoute>;
  readonly global: PluginChain | null;
  /** traffic-split and friends: an upstream id or an inline upstream object. */
  resolveUpstream(ref: string | JsonObject): UpstreamRuntime | null;
  /** The chain of `route` merged with the consumer's (and its group's) plugins; cached per snapshot. */
  consumerChain(route: HttpRoute, consumer: ConsumerRef): PluginChain;
}
