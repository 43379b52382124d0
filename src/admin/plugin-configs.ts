// plugin_configs: id required (no POST); plugin-held references checked; delete refused while a route uses it.
import type { KindSpec } from './kind.ts';
import { checkPluginRefs, displayId, findUser, sameId } from './refs.ts';

export const pluginConfigsSpec: KindSpec = {
  kind: 'plugin_configs',
  unsupported: ['POST'],
  check: ({ ctx, value }) => checkPluginRefs(ctx, value.plugins),
  checkDelete: async (ctx, id) => {
    const user = await findUser(ctx, ['routes'], (v) => sameId(v.plugin_config_id, id));
    return user ? `can not delete this plugin config, route [${displayId(user)}] is still using it now` : null;
  },
};
