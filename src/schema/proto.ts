// Proto content check (APISIX admin/proto.lua check_conf -> grpc-transcode compile_proto): the content is a
// .proto text, or else a base64 FileDescriptorSet. Config-time only; the compiled result is not kept here.
import { createRequire } from 'node:module';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);
// protobufjs' descriptor extension is CommonJS without an ESM entry.
const descriptor = require('protobufjs/ext/descriptor') as { FileDescriptorSet: protobuf.Type };

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** null when `content` compiles, else APISIX's `invalid content: <reason>`. */
export function checkProtoContent(content: unknown): string | null {
  if (typeof content !== 'string') return null;
  let textError: string;
  try {
    protobuf.parse(content, { keepCase: true });
    return null;
  } catch (err) {
    textError = (err as Error).message;
  }
  const compact = content.replace(/\s+/g, '');
  if (compact.length > 0 && compact.length % 4 === 0 && BASE64.test(compact)) {
    try {
      const set = descriptor.FileDescriptorSet.decode(Buffer.from(compact, 'base64')) as unknown as { file?: unknown[] };
      if (Array.isArray(set.file) && set.file.length > 0) return null;
    } catch {
      // Not a descriptor set either: the text parser's error is the useful one.
    }
  }
  return `invalid content: ${textError}`;
}
