// services: upstream references on write; delete refused while a route or stream route uses the service.
import type { KindSpec } from './kind.ts';
import { checkPluginRefs, checkRef, checkUpstreamTls, displayId, findUser, firstFailure, sameId } from './refs.ts';

export const servicesSpec: KindSpec = {
  kind: 'services',
  unsupported: [],
  check: ({ ctx, value }) =>
    firstFailure([
      () => checkRef(ctx, 'upstreams', value.upstream_id),
      () => checkUpstreamTls(ctx, value.upstream),
      () => checkPluginRefs(ctx, value.plugins),
    ]),
  checkDelete: async (ctx, id) => {
    const user = await findUser(ctx, ['routes', 'stream_routes'], (v) => sameId(v.service_id, id));
    if (!user) return null;
    const what = user.kind === 'routes' ? 'route' : 'stream_route';
    return `can not delete this service directly, ${what} [${displayId(user)}] is still using it now`;
  },
};
