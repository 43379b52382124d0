// What the stream listeners read per session: the stream runtime built from one config snapshot.
// Immutable once published; a session pins the runtime current at accept time.
import type { JsonObject } from '../src/config/resources.ts';
import type { PluginChain } from '../src/plugin/chain.ts';
import type { UpstreamRuntime } from '../src/upstream/upstream.ts';
import type { StreamRouter } from './router.ts';

export interface StreamRoute {
  readonly id: string;
  /** The stream route object as stored (defaults applied); what the router matches on. */
  readonly value: JsonObject;
  readonly name: string | undefined;
  readonly serviceId: string | undefined;
  /** Route upstream, else upstream_id, else the service's; null when none is configured. */
  readonly upstream: UpstreamRuntime | null;
  /** Stream plugins: service plugins with the route's overriding them by name. */
  readonly chain: PluginChain;
  /** Why the route cannot proxy (missing service/upstream); the session is closed with this reason. */
  readonly broken: string | null;
}

export interface StreamRuntime {
  readonly revision: number;
  readonly router: StreamRouter<StreamRoute>;
  /** Stream plugins of the global rules (run before the route's in each phase), null when none. */
  readonly global: PluginChain | null;
  /** traffic-split: an upstream id, or an inline upstream object. */
  resolveUpstream(ref: string | JsonObject): UpstreamRuntime | null;
  /** xRPC: routes whose `protocol.superior_id` names `routeId`, in storage order. */
  subordinatesOf?(routeId: string): readonly StreamRoute[];
}
