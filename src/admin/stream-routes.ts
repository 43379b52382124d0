// stream_routes: writable only when stream mode is on; no PATCH; references to upstreams, services and the
// superior route of an xRPC protocol; delete refused while another stream route names it as superior.
import type { KindSpec } from './kind.ts';
import { errorReply } from './envelope.ts';
import { isObject } from './patch.ts';
import { checkRef, checkUpstreamTls, displayId, findUser, firstFailure, sameId } from './refs.ts';

export const streamRoutesSpec: KindSpec = {
  kind: 'stream_routes',
  unsupported: ['PATCH'],
  filterFields: ['service_id', 'upstream_id'],
  guard: (ctx, method) =>
    !ctx.streamEnabled && (method === 'PUT' || method === 'POST')
      ? errorReply(400, 'stream mode is disabled, can not add stream routes')
      : null,
  check: ({ ctx, storeId, value }) =>
    firstFailure([
      () => checkRef(ctx, 'upstreams', value.upstream_id),
      () => checkRef(ctx, 'services', value.service_id),
      () => checkUpstreamTls(ctx, value.upstream),
      async () => {
        const proto = value.protocol;
        if (!isObject(proto) || proto.superior_id === undefined || proto.superior_id === null) return null;
        const sup = String(proto.superior_id);
        if (storeId !== '' && sup === storeId) {
          return errorReply(400, `stream route [${sup}] can not be its own superior`);
        }
        const superior = await ctx.store.fetch('stream_routes', sup);
        if (!superior) return errorReply(400, `failed to fetch stream routes[${sup}], response code: 404`);
        const supProto = superior.value.protocol;
        if (!isObject(supProto) || supProto.name !== proto.name) {
          return errorReply(400, `protocol of stream route [${sup}] is not ${String(proto.name)}`);
        }
        return null;
      },
    ]),
  checkDelete: async (ctx, id) => {
    const user = await findUser(
      ctx,
      ['stream_routes'],
      (v) => isObject(v.protocol) && sameId(v.protocol.superior_id, id),
    );
    return user ? `can not delete this stream route directly, stream route [${displayId(user)}] will refer it` : null;
  },
};
