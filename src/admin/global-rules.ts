// global_rules: id required (no POST); a plugin may appear in one global rule only.
import type { KindSpec } from './kind.ts';
import { errorReply } from './envelope.ts';
import { isObject } from './patch.ts';
import { checkPluginRefs } from './refs.ts';

export const globalRulesSpec: KindSpec = {
  kind: 'global_rules',
  unsupported: ['POST'],
  check: async ({ ctx, storeId, value }) => {
    const plugins = isObject(value.plugins) ? Object.keys(value.plugins) : [];
    if (plugins.length > 0) {
      for (const other of await ctx.store.fetchList('global_rules')) {
        if (other.id === storeId || !isObject(other.value.plugins)) continue;
        for (const name of plugins) {
          if (Object.hasOwn(other.value.plugins, name)) {
            return errorReply(400, `plugin '${name}' already exists in global rule with id '${other.id}'`);
          }
        }
      }
    }
    return await checkPluginRefs(ctx, value.plugins);
  },
};
