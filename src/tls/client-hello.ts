// The server_name of a TLS ClientHello handshake message (RFC 8446 4.1.2, RFC 6066 3): one parser for every
// listener that must know the SNI before a TLS stack sees the handshake (the stream TLS peek reads it out of TLS
// records, the QUIC listener out of the client's Initial CRYPTO frames). Input is untrusted: every length is
// checked against the message's own bounds.

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
