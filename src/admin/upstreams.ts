// upstreams: `tls.client_cert_id` must name a client ssl; delete refused while referenced by `upstream_id`
// (routes, services, stream routes) or by a traffic-split `weighted_upstreams[].upstream_id`.
import type { Kind } from '../config/resources.ts';
import { KIND_SINGULAR } from '../config/resources.ts';
import type { KindSpec } from './kind.ts';
import { checkUpstreamTls, displayId, findUser, sameId, trafficSplitUpstreamIds } from './refs.ts';

const TRAFFIC_SPLIT_HOLDERS: readonly Kind[] = [
  'routes',
  'services',
  'plugin_configs',
  'consumers',
  'consumer_groups',
  'global_rules',
];

export const upstreamsSpec: KindSpec = {
  kind: 'upstreams',
  unsupported: [],
  check: ({ ctx, value }) => checkUpstreamTls(ctx, value),
  checkDelete: async (ctx, id) => {
    const direct = await findUser(ctx, ['routes', 'services', 'stream_routes'], (v) => sameId(v.upstream_id, id));
    if (direct) {
      return `can not delete this upstream, ${KIND_SINGULAR[direct.kind]} [${displayId(direct)}] is still using it now`;
    }
    const viaPlugin = await findUser(ctx, TRAFFIC_SPLIT_HOLDERS, (v) => trafficSplitUpstreamIds(v.plugins).includes(id));
    if (viaPlugin) {
      return `can not delete this upstream, plugin in ${KIND_SINGULAR[viaPlugin.kind]} [${displayId(viaPlugin)}] is still using it now`;
    }
    return null;
  },
};
