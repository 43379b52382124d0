// protos: no PATCH; delete refused while a route or service `grpc-transcode.proto_id` uses it.
import type { KindSpec } from './kind.ts';
import { displayId, findUser, protoIdOf } from './refs.ts';

export const protosSpec: KindSpec = {
  kind: 'protos',
  unsupported: ['PATCH'],
  checkDelete: async (ctx, id) => {
    const user = await findUser(ctx, ['routes', 'services'], (v) => protoIdOf(v.plugins) === id);
    if (!user) return null;
    const what = user.kind === 'routes' ? 'route' : 'service';
    return `can not delete this proto, ${what} [${displayId(user)}] is still using it now`;
  },
};
