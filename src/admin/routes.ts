// routes: references to upstreams, services, plugin configs, client ssls and plugin-held ids (the schema and
// host/hosts, remote_addr/remote_addrs exclusivity are the validator's).
import type { KindSpec } from './kind.ts';
import { checkPluginRefs, checkRef, checkUpstreamTls, firstFailure } from './refs.ts';

export const routesSpec: KindSpec = {
  kind: 'routes',
  unsupported: [],
  filterFields: ['service_id', 'upstream_id'],
  check: ({ ctx, value }) =>
    firstFailure([
      () => checkRef(ctx, 'upstreams', value.upstream_id),
      () => checkRef(ctx, 'services', value.service_id),
      () => checkRef(ctx, 'plugin_configs', value.plugin_config_id),
      () => checkUpstreamTls(ctx, value.upstream),
      () => checkPluginRefs(ctx, value.plugins),
    ]),
};
