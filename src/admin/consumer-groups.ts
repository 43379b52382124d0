// consumer_groups: id required (no POST); delete refused while a consumer has that group_id.
import type { KindSpec } from './kind.ts';
import { checkPluginRefs, displayId, findUser, sameId } from './refs.ts';

export const consumerGroupsSpec: KindSpec = {
  kind: 'consumer_groups',
  unsupported: ['POST'],
  check: ({ ctx, value }) => checkPluginRefs(ctx, value.plugins),
  checkDelete: async (ctx, id) => {
    const user = await findUser(ctx, ['consumers'], (v) => sameId(v.group_id, id));
    return user ? `can not delete this consumer group, consumer [${displayId(user)}] is still using it now` : null;
  },
};
