// The server_name of a TLS ClientHello (RFC 8446 4.1.2, RFC 6066 3): one parser for every listener that must
// know the SNI before a TLS stack sees the handshake: the stream TLS peek and the HTTPS listener read it out of TLS
// records (parseClientHello), the QUIC listener out of the client's Initial CRYPTO frames (sniFromHandshake).
// Input is untrusted: every length is checked against the message's own bounds.

const HOST_NAME = /^[A-Za-z0-9._-]{1,253}$/;

/** Extracts host_name from a complete ClientHello handshake message; undefined when absent or malformed. */
export function sniFromHandshake(h: Buffer): string | undefined {
  if (h.length < 4 || h[0] !== 0x01) return undefined;
  const end = Math.min(h.length, 4 + h.readUIntBE(1, 3));
  let p = 4 + 2 + 32; // version, random
  if (p + 1 > end) return undefined;
  p += 1 + h[p]!; // session id
  if (p + 2 > end) return undefined;
  p += 2 + h.readUInt16BE(p); // cipher suites
  if (p + 1 > end) return undefined;
  p += 1 + h[p]!; // compression methods
  if (p + 2 > end) return undefined;
  const extEnd = Math.min(end, p + 2 + h.readUInt16BE(p));
  p += 2;
  while (p + 4 <= extEnd) {
    const type = h.readUInt16BE(p);
    const len = h.readUInt16BE(p + 2);
    p += 4;
    if (p + len > extEnd) return undefined;
    if (type === 0) {
      let q = p + 2;
      const listEnd = Math.min(p + len, p + 2 + h.readUInt16BE(p));
      while (q + 3 <= listEnd) {
        const nameType = h[q]!;
        const nameLen = h.readUInt16BE(q + 1);
        q += 3;
        if (q + nameLen > listEnd) return undefined;
        if (nameType === 0) {
          const name = h.toString('ascii', q, q + nameLen);
          return HOST_NAME.test(name) ? name.toLowerCase() : undefined;
        }
        q += nameLen;
      }
      return undefined;
    }
    p += len;
  }
  return undefined;
}

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
