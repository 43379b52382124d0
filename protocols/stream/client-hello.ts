// Reads the SNI of a TLS ClientHello from bytes peeked off a plain TCP connection (TLS passthrough routing).
// The bytes are not consumed: the whole ClientHello is forwarded to the upstream unchanged. The handshake
// message itself is read by src/tls/client-hello.ts, shared with the QUIC listener (whose ClientHello arrives in
// CRYPTO frames, not TLS records).
import { sniFromHandshake } from '../../src/tls/client-hello.ts';

// Also exported from here: the stream TLS peek and its fuzz target are one unit (test/fuzz/client-hello).
export { sniFromHandshake };

/** Bound on the bytes buffered to find the SNI (a ClientHello is normally a few hundred bytes). */
export const CLIENT_HELLO_MAX = 32 * 1024;

export type HelloResult =
  | { readonly kind: 'not_tls' }
  /** More bytes are needed: wait until at least `bytes` are buffered. */
  | { readonly kind: 'need'; readonly bytes: number }
  | { readonly kind: 'tls'; readonly sni: string | undefined };

/** Whether the first bytes look like a TLS handshake record (0x16 0x03 0x0[0-4]). */
export function looksLikeTls(buf: Buffer): boolean | undefined {
  if (buf.length < 1) return undefined;
  if (buf[0] !== 0x16) return false;
  if (buf.length < 3) return undefined;
  return buf[1] === 0x03 && buf[2]! <= 0x04;
}

/** Collects handshake bytes across consecutive handshake records (a ClientHello may span records). */
function handshakeBytes(buf: Buffer): { data: Buffer; need: number } | null {
  const parts: Buffer[] = [];
  let have = 0;
  let off = 0;
  let want = -1;
  while (off + 5 <= buf.length) {
    if (buf[off] !== 0x16) return null;
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > 16384 + 2048) return null;
    if (off + 5 + len > buf.length) return { data: Buffer.concat(parts), need: off + 5 + len };
    parts.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (want < 0 && have >= 4) {
      const first = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      want = 4 + first.readUIntBE(1, 3);
    }
    if (want >= 0 && have >= want) return { data: Buffer.concat(parts), need: 0 };
  }
  return { data: Buffer.concat(parts), need: off + 5 };
}

export function parseClientHello(buf: Buffer): HelloResult {
  const tls = looksLikeTls(buf);
  if (tls === undefined) return { kind: 'need', bytes: 5 };
  if (!tls) return { kind: 'not_tls' };
  const hs = handshakeBytes(buf);
  if (hs === null) return { kind: 'not_tls' };
  if (hs.need > 0) {
    if (hs.need > CLIENT_HELLO_MAX) return { kind: 'tls', sni: undefined };
    return { kind: 'need', bytes: hs.need };
  }
  return { kind: 'tls', sni: sniFromHandshake(hs.data) };
}
