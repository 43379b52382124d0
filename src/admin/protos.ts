// protos: no PATCH; delete refused while a route or service `grpc-transcode.proto_id` uses it, or while another
// stored proto's source text imports it as `import "<id>.proto";` (src/plugin/protos.ts resolves those imports
// at compile time, so the importer would fail at its next compile). A descriptor-set proto bundles its imports
// and never holds a reference.
import protobuf from 'protobufjs';
import type { Json } from '../config/resources.ts';
import { importedFiles } from '../plugin/protos.ts';
import type { KindSpec } from './kind.ts';
import { displayId, findUser, protoIdOf } from './refs.ts';

/**
 * Whether proto source text imports `file` (plain, public or weak). The imports are read by protobufjs' parser,
 * the one that resolves them at compile time, so commented-out imports do not count. Content that does not
 * parse as text (a base64 descriptor set, which the Admin API only stores when it decodes) imports nothing.
 */
export function importsFile(content: Json | undefined, file: string): boolean {
  // A cheap filter first: a delete scans every stored proto, and most name no such file at all.
  if (typeof content !== 'string' || !content.includes(file)) return false;
  let parsed: protobuf.IParserResult;
  try {
    parsed = protobuf.parse(content, new protobuf.Root(), { keepCase: true });
  } catch {
    return false;
  }
  return importedFiles(parsed).includes(file);
}

export const protosSpec: KindSpec = {
  kind: 'protos',
  unsupported: ['PATCH'],
  checkDelete: async (ctx, id) => {
    const user = await findUser(ctx, ['routes', 'services'], (v) => protoIdOf(v.plugins) === id);
    if (user) {
      const what = user.kind === 'routes' ? 'route' : 'service';
      return `can not delete this proto, ${what} [${displayId(user)}] is still using it now`;
    }
    const file = `${id}.proto`;
    for (const item of await ctx.store.fetchList('protos')) {
      // A proto importing itself holds no reference to anything else.
      if (item.id !== id && importsFile(item.value.content, file)) {
        return `can not delete this proto, proto [${displayId({ kind: 'protos', item })}] is still importing it now`;
      }
    }
    return null;
  },
};
