// The client's QUIC v1 Initial packets, read far enough to learn the TLS server_name before the QUIC library
// accepts the connection (quiche takes its certificate with the connection's configuration and the binding has
// no SNI callback). RFC 9001 5.2: Initial packets are protected with keys every observer can derive from the
// Destination Connection ID the client chose, so reading them needs no server secret. RFC 9000 17.2.2 gives the
// packet layout; a ClientHello may span several Initial packets and datagrams (Chromium's post-quantum key
// share does), so CRYPTO frames are reassembled by offset. Everything here parses untrusted bytes: every length
// is checked, and a packet that does not decrypt is ignored.
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import { sniFromHandshake } from '../../src/tls/client-hello.ts';

export const QUIC_V1 = 0x00000001;
/** RFC 9001 5.2 initial_salt of QUIC version 1. */
const INITIAL_SALT_V1 = Buffer.from('38762cf7f55934b34d179ae6a4c80cadccbb7f0a', 'hex');
/** The ClientHello length accepted; larger ones are not waited for (the assembler gives up). */
export const CLIENT_HELLO_MAX = 16 * 1024;

export interface PacketKeys {
  readonly key: Buffer;
  readonly iv: Buffer;
  readonly hp: Buffer;
}

/** HKDF-Expand-Label of TLS 1.3 (RFC 8446 7.1) with an empty context, for outputs of at most one SHA-256 block. */
export function expandLabel(secret: Buffer, label: string, length: number): Buffer {
  const name = Buffer.from(`tls13 ${label}`, 'latin1');
  const info = Buffer.alloc(2 + 1 + name.length + 1);
  info.writeUInt16BE(length, 0);
  info[2] = name.length;
  name.copy(info, 3);
  // HKDF-Expand (RFC 5869 2.3): T(1) = HMAC(PRK, info | 0x01) covers L <= 32.
  return createHmac('sha256', secret).update(info).update(Buffer.of(1)).digest().subarray(0, length);
}

/** client_initial_secret = HKDF-Expand-Label(HKDF-Extract(initial_salt, DCID), "client in", "", 32). */
export function clientInitialSecret(dcid: Uint8Array): Buffer {
  const initial = createHmac('sha256', INITIAL_SALT_V1).update(dcid).digest();
  return expandLabel(initial, 'client in', 32);
}

/** AEAD key, IV and header protection key of an AES-128-GCM packet protection secret. */
export function packetKeys(secret: Buffer): PacketKeys {
  return { key: expandLabel(secret, 'quic key', 16), iv: expandLabel(secret, 'quic iv', 12), hp: expandLabel(secret, 'quic hp', 16) };
}

export function clientInitialKeys(dcid: Uint8Array): PacketKeys {
  return packetKeys(clientInitialSecret(dcid));
}

/** A QUIC variable-length integer at `off` (RFC 9000 16); null past `end`. */
function varint(b: Buffer, off: number, end: number): { v: number; n: number } | null {
  if (off >= end) return null;
  const n = 1 << (b[off]! >> 6);
  if (off + n > end) return null;
  let v = b[off]! & 0x3f;
  for (let i = 1; i < n; i++) v = v * 256 + b[off + i]!;
  return { v, n };
}

/** RFC 9000 A.3: the full packet number closest to the next expected one. */
function decodePacketNumber(largest: number, truncated: number, pnBits: number): number {
  const expected = largest + 1;
  const win = 2 ** pnBits;
  const hwin = win / 2;
  const candidate = expected - (expected % win) + truncated;
  if (candidate <= expected - hwin && candidate < 2 ** 62 - win) return candidate + win;
  if (candidate > expected + hwin && candidate >= win) return candidate - win;
  return candidate;
}

export interface OpenedPacket {
  /** Decrypted frames. */
  readonly payload: Buffer;
  readonly pn: number;
  /** Offset of the next coalesced packet in the datagram. */
  readonly next: number;
}

/**
 * Removes header protection from and decrypts the Initial packet at `off` (RFC 9001 5.3, 5.4). `largestPn` is
 * the largest packet number opened so far in this packet number space (-1 for none). Null when the bytes are
 * not a v1 Initial packet or do not authenticate.
 */
export function openInitial(datagram: Buffer, off: number, keys: PacketKeys, largestPn: number): OpenedPacket | null {
  const end = datagram.length;
  if (off + 7 > end) return null;
  const first = datagram[off]!;
  // Long header, fixed bit, type Initial (0b00).
  if ((first & 0xf0) !== 0xc0 || datagram.readUInt32BE(off + 1) !== QUIC_V1) return null;
  let p = off + 5;
  const dcidLen = datagram[p]!;
  if (dcidLen > 20) return null;
  p += 1 + dcidLen;
  if (p >= end) return null;
  const scidLen = datagram[p]!;
  if (scidLen > 20) return null;
  p += 1 + scidLen;
  const tokenLen = varint(datagram, p, end);
  if (tokenLen === null) return null;
  p += tokenLen.n + tokenLen.v;
  const length = varint(datagram, p, end);
  if (length === null) return null;
  const pnOffset = p + length.n;
  const packetEnd = pnOffset + length.v;
  // The sample starts 4 bytes after the packet number's first byte, as if it were 4 bytes long (RFC 9001 5.4.2).
  if (packetEnd > end || pnOffset + 4 + 16 > packetEnd) return null;
  const hp = createCipheriv('aes-128-ecb', keys.hp, null);
  const mask = hp.update(datagram.subarray(pnOffset + 4, pnOffset + 20));
  const header = Buffer.from(datagram.subarray(off, pnOffset + 4));
  header[0] = first ^ (mask[0]! & 0x0f);
  const pnLen = (header[0]! & 0x03) + 1;
  let truncated = 0;
  for (let i = 0; i < pnLen; i++) {
    const byte = datagram[pnOffset + i]! ^ mask[1 + i]!;
    header[pnOffset - off + i] = byte;
    truncated = truncated * 256 + byte;
  }
  const pn = decodePacketNumber(largestPn, truncated, pnLen * 8);
  const nonce = Buffer.from(keys.iv);
  for (let i = 0, rest = pn; i < 8 && rest > 0; i++, rest = Math.floor(rest / 256)) nonce[11 - i]! ^= rest % 256;
  const cipherStart = pnOffset + pnLen;
  if (packetEnd - cipherStart < 16) return null;
  try {
    const aead = createDecipheriv('aes-128-gcm', keys.key, nonce);
    aead.setAAD(header.subarray(0, pnOffset - off + pnLen));
    aead.setAuthTag(datagram.subarray(packetEnd - 16, packetEnd));
    const payload = Buffer.concat([aead.update(datagram.subarray(cipherStart, packetEnd - 16)), aead.final()]);
    return { payload, pn, next: packetEnd };
  } catch {
    return null;
  }
}

/**
 * Calls `crypto` for each CRYPTO frame of an Initial packet's payload. False when the payload holds a frame an
 * Initial packet may not carry (RFC 9000 12.4) or is malformed.
 */
export function cryptoFrames(payload: Buffer, crypto: (offset: number, data: Buffer) => void): boolean {
  const end = payload.length;
  let p = 0;
  while (p < end) {
    const type = payload[p]!;
    if (type === 0x00 || type === 0x01) {
      p++; // PADDING, PING
    } else if (type === 0x06) {
      const offset = varint(payload, p + 1, end);
      if (offset === null) return false;
      const len = varint(payload, p + 1 + offset.n, end);
      if (len === null) return false;
      const start = p + 1 + offset.n + len.n;
      if (start + len.v > end) return false;
      crypto(offset.v, payload.subarray(start, start + len.v));
      p = start + len.v;
    } else if (type === 0x02 || type === 0x03) {
      // ACK: largest, delay, range count, first range, then (gap, length) pairs, then 3 ECN counts for 0x03.
      p++;
      const fields: number[] = [];
      for (let i = 0; i < 4; i++) {
        const f = varint(payload, p, end);
        if (f === null) return false;
        fields.push(f.v);
        p += f.n;
      }
      const more = fields[2]! * 2 + (type === 0x03 ? 3 : 0);
      if (more > end - p) return false;
      for (let i = 0; i < more; i++) {
        const f = varint(payload, p, end);
        if (f === null) return false;
        p += f.n;
      }
    } else {
      return false;
    }
  }
  return true;
}

export type HelloProgress =
  /** More Initial packets are needed. */
  | { readonly kind: 'need' }
  /** The ClientHello is complete; `sni` is its server_name (undefined when absent or malformed). */
  | { readonly kind: 'hello'; readonly sni: string | undefined }
  /** Not a readable ClientHello (not v1, does not decrypt, bad frames, too large): do not wait for more. */
  | { readonly kind: 'unreadable' };

const NEED: HelloProgress = { kind: 'need' };
const UNREADABLE: HelloProgress = { kind: 'unreadable' };

/** Reassembles the ClientHello from the Initial packets of one client DCID. */
export class ClientHelloAssembler {
  private readonly keys: PacketKeys;
  private largestPn = -1;
  /** CRYPTO data by offset, as received (retransmissions may overlap). */
  private readonly fragments: Array<{ offset: number; data: Buffer }> = [];
  private total = -1;

  constructor(dcid: Uint8Array) {
    this.keys = clientInitialKeys(dcid);
  }

  /** Adds one datagram (its coalesced Initial packets) and reports whether the ClientHello is complete. */
  add(datagram: Buffer): HelloProgress {
    let off = 0;
    let opened = 0;
    while (off < datagram.length && (datagram[off]! & 0xf0) === 0xc0) {
      const packet = openInitial(datagram, off, this.keys, this.largestPn);
      if (packet === null) break;
      opened++;
      if (packet.pn > this.largestPn) this.largestPn = packet.pn;
      let tooLarge = false;
      const wellFormed = cryptoFrames(packet.payload, (offset, data) => {
        if (offset + data.length > CLIENT_HELLO_MAX) tooLarge = true;
        else if (data.length > 0) this.fragments.push({ offset, data });
      });
      if (!wellFormed || tooLarge) return UNREADABLE;
      off = packet.next;
    }
    if (opened === 0) return UNREADABLE;
    return this.progress();
  }

  private progress(): HelloProgress {
    this.fragments.sort((a, b) => a.offset - b.offset);
    // Length of the contiguous prefix from offset 0.
    let have = 0;
    for (const f of this.fragments) {
      if (f.offset > have) break;
      have = Math.max(have, f.offset + f.data.length);
    }
    if (this.total < 0 && have >= 4) {
      const head = this.prefix(4);
      if (head[0] !== 0x01) return UNREADABLE; // the first handshake message must be a ClientHello
      this.total = 4 + head.readUIntBE(1, 3);
      if (this.total > CLIENT_HELLO_MAX) return UNREADABLE;
    }
    if (this.total < 0 || have < this.total) return NEED;
    return { kind: 'hello', sni: sniFromHandshake(this.prefix(this.total)) };
  }

  /** The first `n` bytes of the CRYPTO stream (the caller checked they are all present). */
  private prefix(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (const f of this.fragments) {
      if (f.offset >= n) break;
      f.data.copy(out, f.offset, 0, Math.min(f.data.length, n - f.offset));
    }
    return out;
  }
}
