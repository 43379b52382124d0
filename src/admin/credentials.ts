// credentials (`/consumers/{u}/credentials[/{cid}]`): the parent consumer must exist; exactly one plugin, of
// type auth; the auth key must not belong to another consumer. Stored at `consumers/{u}/credentials/{cid}`.
import type { JsonObject } from '../config/resources.ts';
import type { KindSpec } from './kind.ts';
import { duplicateAuthKey } from './auth-keys.ts';
import { errorReply, NOT_FOUND } from './envelope.ts';
import { isObject } from './patch.ts';

const SCOPE_MARK = '/credentials/';

/**
 * APISIX answers a credential's `id` as the id the client gave (`cred1`); the standalone store keeps it as
 * `<username>/credentials/cred1` (the standalone file's form), which tools such as ADC would send back in URLs.
 */
function credentialView(value: JsonObject): JsonObject {
  const id = value.id;
  if (typeof id !== 'string') return value;
  const at = id.indexOf(SCOPE_MARK);
  return at < 0 ? value : { ...value, id: id.slice(at + SCOPE_MARK.length) };
}

export const credentialsSpec: KindSpec = {
  kind: 'credentials',
  unsupported: ['POST', 'PATCH'],
  view: credentialView,
  // segs: <username> credentials [<cid>]
  parsePath: (segs) => {
    if (segs.length < 2 || segs[1] !== 'credentials' || segs.length > 3) return NOT_FOUND;
    return { scope: `${segs[0]}/credentials/`, id: segs[2], subPath: [] };
  },
  requireParent: async (ctx, target) => {
    const username = target.scope.slice(0, target.scope.indexOf('/'));
    const parent = await ctx.store.fetch('consumers', username);
    return parent ? null : errorReply(404, 'consumer not found');
  },
  check: async ({ ctx, target, value }) => {
    if (isObject(value.plugins)) {
      const names = Object.keys(value.plugins);
      for (const name of names) {
        const def = ctx.plugins.get(name) ?? ctx.plugins.get(name, 'stream');
        if (def?.type !== 'auth') return errorReply(400, 'only supports auth type plugins in consumer credential');
      }
      if (names.length > 1) return errorReply(400, 'only one auth plugin is allowed in a credential');
    }
    const owner = target.scope.slice(0, target.scope.indexOf('/'));
    const dup = await duplicateAuthKey(ctx, owner, value.plugins);
    return dup ? errorReply(400, dup) : null;
  },
};
