// Bounded request bodies: a reader for plugins that need the whole body, and a limiter for streamed bodies.
import { Transform, type Readable, type TransformCallback } from 'node:stream';

export class BodyTooLarge extends Error {
  readonly status = 413;
  constructor() {
    super('request body too large');
  }
}

/** Reads a whole body; rejects with BodyTooLarge past `limit` bytes (0 = unlimited, still capped at 64 MiB). */
export async function readBounded(src: Readable, limit: number): Promise<Buffer> {
  const cap = limit > 0 ? limit : 64 * 1024 * 1024;
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of src) {
    const b = chunk as Buffer;
    total += b.length;
    if (total > cap) throw new BodyTooLarge();
    chunks.push(b);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

/** Passes a streamed body through, failing the stream once it exceeds `limit` bytes. */
export class BodyLimiter extends Transform {
  private seen = 0;
  private readonly limit: number;
  constructor(limit: number) {
    super();
    this.limit = limit;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) cb(new BodyTooLarge());
    else cb(null, chunk);
  }
}
