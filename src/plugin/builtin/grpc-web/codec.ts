// The gRPC-Web wire pieces the grpc-web plugin needs (grpc/doc/PROTOCOL-WEB.md): incremental base64 decoding of
// application/grpc-web-text request bodies, whatever their chunking (a chunk may end inside a 4-character
// quad, and a body may be a concatenation of separately padded segments), and the trailer frame
// (flag 0x80, 4-byte big-endian length, `name:value\r\n` lines).

/** Standard base64 alphabet plus padding; anything else (whitespace aside) makes the body invalid. */
const VALID = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=') VALID[c.charCodeAt(0)] = 1;
const WHITESPACE = /[\r\n\t ]/g;
const EMPTY = Buffer.alloc(0);

export class Base64Error extends Error {}

/**
 * Decodes a base64 stream chunk by chunk. Characters that do not complete a quad wait for the next chunk; a
 * padded quad ends one segment and decoding restarts after it (Node's decoder stops at the first '=').
 */
export class Base64StreamDecoder {
  private pending = '';

  /** The bytes decodable so far; throws Base64Error on characters outside the alphabet or misplaced padding. */
  push(chunk: Buffer): Buffer {
    let s = this.pending + chunk.toString('latin1');
    if (s.indexOf(' ') >= 0 || s.indexOf('\n') >= 0 || s.indexOf('\r') >= 0 || s.indexOf('\t') >= 0) s = s.replace(WHITESPACE, '');
    for (let i = this.pending.length; i < s.length; i++) {
      if (VALID[s.charCodeAt(i)] !== 1) throw new Base64Error('invalid base64 character');
    }
    let out: Buffer[] | null = null;
    let start = 0;
    for (;;) {
      const eq = s.indexOf('=', start);
      if (eq < 0) break;
      let end = eq;
      while (end < s.length && s.charCodeAt(end) === 61) end++;
      if ((end - start) % 4 !== 0) {
        // A padding run cut by the chunk boundary completes with the next chunk; elsewhere it is malformed.
        if (end === s.length && end - eq < 3) break;
        throw new Base64Error('misplaced base64 padding');
      }
      if (end - eq > 2) throw new Base64Error('misplaced base64 padding');
      (out ??= []).push(Buffer.from(s.slice(start, end), 'base64'));
      start = end;
    }
    const rest = s.length - start;
    const whole = rest - (rest % 4);
    if (whole > 0) {
      const quads = s.slice(start, start + whole);
      // Only the incomplete last quad may hold a (cut) padding run.
      if (quads.indexOf('=') >= 0) throw new Base64Error('misplaced base64 padding');
      (out ??= []).push(Buffer.from(quads, 'base64'));
    }
    this.pending = s.slice(start + whole);
    if (out === null) return EMPTY;
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /** The end of the body: a dangling partial quad is an error. */
  finish(): void {
    if (this.pending.length !== 0) throw new Base64Error('truncated base64 body');
  }
}

/**
 * The trailer frame: grpc-status, grpc-message (always present, as APISIX writes it), then the other trailers
 * of the upstream (as Envoy's grpc_web filter forwards them).
 */
export function trailerFrame(status: string, message: string, others: Record<string, string> | null): Buffer {
  let block = `grpc-status:${status}\r\ngrpc-message:${message}\r\n`;
  if (others !== null) {
    for (const k in others) {
      if (k === 'grpc-status' || k === 'grpc-message') continue;
      block += `${k}:${others[k]}\r\n`;
    }
  }
  const len = Buffer.byteLength(block, 'latin1');
  const out = Buffer.allocUnsafe(5 + len);
  out[0] = 0x80;
  out.writeUInt32BE(len, 1);
  out.write(block, 5, 'latin1');
  return out;
}
