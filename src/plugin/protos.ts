// Compiled protos (the `protos` resource, APISIX grpc-transcode/proto.lua), for grpc-transcode.
// `content` is .proto source text, or else a base64 FileDescriptorSet (`protoc --include_imports
// --descriptor_set_out`), tried in that order as APISIX does. Source text may import the well-known types
// (google/protobuf/*.proto, bundled with protobufjs) and, beyond APISIX (which has no imports for text
// content), other stored protos by id: `import "<id>.proto";` reads the source text of the proto object `id`
// (its own imports resolved the same way; cycles are loaded once). Compiling is config-time work: results are
// cached per stored object version (the StoredItem object is replaced on every write) together with the
// versions of every proto object it imported (or looked for), so a snapshot rebuild or another route naming
// the same proto costs nothing, and a change to an imported proto recompiles its importers.
import { createRequire } from 'node:module';
import protobuf from 'protobufjs';
import type { JsonObject } from '../config/resources.ts';
import { Snapshot } from '../config/snapshot.ts';
import type { PluginEnv } from './plugin.ts';

const require = createRequire(import.meta.url);
// protobufjs' descriptor extension is CommonJS without an ESM entry.
const descriptor = require('protobufjs/ext/descriptor') as { FileDescriptorSet: protobuf.Type };

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export interface CompiledProto {
  readonly root: protobuf.Root;
  /** A method of `service` (package-qualified, e.g. `helloworld.Greeter`), resolved; undefined if absent. */
  method(service: string, name: string): protobuf.Method | undefined;
  /** A message type by full name (leading dot optional); undefined if absent. */
  type(name: string): protobuf.Type | undefined;
}

export type CompileResult = { readonly ok: true; readonly proto: CompiledProto } | { readonly ok: false; readonly error: string };

class Compiled implements CompiledProto {
  readonly root: protobuf.Root;
  constructor(root: protobuf.Root) {
    this.root = root;
  }

  method(service: string, name: string): protobuf.Method | undefined {
    const svc = this.root.lookup(service, [protobuf.Service]);
    if (!(svc instanceof protobuf.Service)) return undefined;
    const m = Object.prototype.hasOwnProperty.call(svc.methods, name) ? svc.methods[name] : undefined;
    return m !== undefined && m.resolvedRequestType !== null && m.resolvedResponseType !== null ? m : undefined;
  }

  type(name: string): protobuf.Type | undefined {
    const t = this.root.lookup(name, [protobuf.Type]);
    return t instanceof protobuf.Type ? t : undefined;
  }
}

/** The source text of an imported stored proto by file name (`<id>.proto`); throws when there is none. */
export type ImportReader = (file: string) => string;

const NO_IMPORTS: ImportReader = (file) => {
  throw new Error(`import "${file}" not found (use a descriptor set for imports)`);
};

/** The files a parsed .proto imports: plain, public and weak imports alike (the Admin API's delete check too). */
export function importedFiles(parsed: protobuf.IParserResult): string[] {
  return [...(parsed.imports ?? []), ...(parsed.weakImports ?? [])];
}

function compileText(content: string, readImport: ImportReader, self: string | null): protobuf.Root {
  const root = new protobuf.Root();
  const loaded = new Set<string>();
  if (self !== null) loaded.add(self);
  const load = (text: string): void => {
    const parsed = protobuf.parse(text, root, { keepCase: true });
    for (const file of importedFiles(parsed)) {
      if (loaded.has(file)) continue;
      loaded.add(file);
      const common = protobuf.common.get(file);
      if (common !== null && common !== undefined) root.addJSON(common.nested ?? {});
      else load(readImport(file));
    }
  };
  load(content);
  root.resolveAll();
  return root;
}

function compileDescriptorSet(content: string): protobuf.Root | null {
  const compact = content.replace(/\s+/g, '');
  if (compact.length === 0 || compact.length % 4 !== 0 || !BASE64.test(compact)) return null;
  try {
    const set = descriptor.FileDescriptorSet.decode(Buffer.from(compact, 'base64')) as unknown as { file?: unknown[] };
    if (!Array.isArray(set.file) || set.file.length === 0) return null;
    // keepCase: fields keep their declared names (protoc fills json_name, which protobufjs would use).
    const root = (protobuf.Root as unknown as { fromDescriptor(s: unknown, o: { keepCase: boolean }): protobuf.Root }).fromDescriptor(set, {
      keepCase: true,
    });
    root.resolveAll();
    return root;
  } catch {
    return null;
  }
}

/**
 * Compiles proto content; the error is the source-text parser's, as APISIX reports it. `readImport` supplies
 * imported stored protos and `self` is this proto's own file name (`<id>.proto`), so an import cycle back to
 * it is not loaded twice.
 */
export function compileProto(content: string, readImport: ImportReader = NO_IMPORTS, self: string | null = null): CompileResult {
  let textError: string;
  try {
    return { ok: true, proto: new Compiled(compileText(content, readImport, self)) };
  } catch (err) {
    textError = (err as Error).message;
  }
  const root = compileDescriptorSet(content);
  if (root !== null) return { ok: true, proto: new Compiled(root) };
  return { ok: false, error: textError };
}

/** Where protos are read from: a Snapshot satisfies it. */
export interface ProtoSource {
  get(kind: 'protos', id: string): { readonly item: object; readonly value: JsonObject } | undefined;
}

const PROTO_FILE = /^(.+)\.proto$/;

/** A compile result with the stored versions of the protos it imported (undefined: looked for, absent). */
interface CacheEntry {
  readonly result: CompileResult;
  readonly deps: readonly (readonly [id: string, item: object | undefined])[];
}

const cache = new WeakMap<object, CacheEntry>();

function depsCurrent(source: ProtoSource, deps: CacheEntry['deps']): boolean {
  for (const [id, item] of deps) if (source.get('protos', id)?.item !== item) return false;
  return true;
}

/** The compiled proto `id` of `source`, compiled once per stored version of it and of its imports. */
export function fetchProto(source: ProtoSource, id: string): CompileResult {
  const entry = source.get('protos', id);
  if (entry === undefined) return { ok: false, error: `failed to find proto by id: ${id}` };
  const hit = cache.get(entry.item);
  if (hit !== undefined && depsCurrent(source, hit.deps)) return hit.result;
  const content = entry.value.content;
  const deps: [string, object | undefined][] = [];
  const readImport: ImportReader = (file) => {
    const m = PROTO_FILE.exec(file);
    const dep = m === null ? undefined : source.get('protos', m[1]!);
    if (m !== null) deps.push([m[1]!, dep?.item]);
    if (dep === undefined) throw new Error(`import "${file}" not found: stored protos are imported as "<proto id>.proto"`);
    const text = dep.value.content;
    if (typeof text !== 'string') throw new Error(`import "${file}": proto content is not a string`);
    return text;
  };
  const result: CompileResult = typeof content === 'string' ? compileProto(content, readImport, `${id}.proto`) : { ok: false, error: 'proto content is not a string' };
  cache.set(entry.item, { result, deps });
  return result;
}

/**
 * The protos a plugin instance may read: `env.protos` when the runtime provides it, else the snapshot the
 * runtime hands plugins as their secret store (the same object that holds the protos).
 */
export function protoSourceOf(env: PluginEnv): ProtoSource | undefined {
  const explicit = (env as PluginEnv & { readonly protos?: ProtoSource }).protos;
  if (explicit !== undefined) return explicit;
  return env.secrets instanceof Snapshot ? env.secrets : undefined;
}
