// consumers: keyed by `username` (a path name must equal it), no POST/PATCH; group and plugin references;
// duplicate auth keys refused; DELETE also removes the consumer's credentials.
import type { KindSpec } from './kind.ts';
import { duplicateAuthKey } from './auth-keys.ts';
import { errorReply, NOT_FOUND } from './envelope.ts';
import { checkPluginRefs, checkRef, firstFailure } from './refs.ts';

export const consumersSpec: KindSpec = {
  kind: 'consumers',
  unsupported: ['POST', 'PATCH'],
  parsePath: (segs) => (segs.length > 1 ? NOT_FOUND : { scope: '', id: segs[0], subPath: [] }),
  assignId: (target, value) => {
    const username = value.username;
    if (target.id !== undefined && username !== target.id) {
      // A missing username is the schema's to report; only a conflicting one is "wrong username".
      if (username !== undefined) return { error: 'wrong username' };
    }
    return { storeId: typeof username === 'string' ? username : (target.id ?? '') };
  },
  check: ({ ctx, storeId, value }) =>
    firstFailure([
      () => checkRef(ctx, 'consumer_groups', value.group_id),
      () => checkPluginRefs(ctx, value.plugins),
      async () => {
        const dup = await duplicateAuthKey(ctx, storeId, value.plugins);
        return dup ? errorReply(400, dup) : null;
      },
    ]),
  afterDelete: async (ctx, username) => {
    await ctx.store.deletePrefix('credentials', `${username}/credentials`);
  },
};
