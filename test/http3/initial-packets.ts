// Client Initial packets built for tests, protected as RFC 9001 5 says (AES-128-GCM payload, AES-128-ECB header
// protection). The sealer is checked against the RFC 9001 A.2 packet in initial.test.ts before anything relies
// on it; the keys come from the module under test, whose derivation is checked against RFC 9001 A.1.
import { createCipheriv } from 'node:crypto';
import { clientInitialKeys, type PacketKeys } from '../../protocols/http3/initial.ts';

/** Applies packet protection to an unprotected header (ending with its packet number) and payload. */
export function seal(keys: PacketKeys, header: Buffer, pnOffset: number, pn: number, payload: Buffer): Buffer {
  const pnLen = (header[0]! & 0x03) + 1;
  const nonce = Buffer.from(keys.iv);
  nonce.writeUInt32BE((nonce.readUInt32BE(8) ^ pn) >>> 0, 8);
  const aead = createCipheriv('aes-128-gcm', keys.key, nonce);
  aead.setAAD(header);
  const body = Buffer.concat([aead.update(payload), aead.final(), aead.getAuthTag()]);
  const packet = Buffer.concat([header, body]);
  const mask = createCipheriv('aes-128-ecb', keys.hp, null).update(packet.subarray(pnOffset + 4, pnOffset + 20));
  packet[0]! ^= mask[0]! & 0x0f;
  for (let i = 0; i < pnLen; i++) packet[pnOffset + i]! ^= mask[1 + i]!;
  return packet;
}

function varint2(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(0x4000 | v);
  return b;
}

function varint(v: number): Buffer {
  if (v < 64) return Buffer.of(v);
  if (v < 16384) return varint2(v);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((0x80000000 | v) >>> 0);
  return b;
}

/** A CRYPTO frame (type 0x06). */
export function cryptoFrame(offset: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.of(0x06), varint(offset), varint(data.length), data]);
}

/** One protected client Initial packet (4-byte packet number) carrying `frames`, padded to `minPayload`. */
export function initialPacket(o: { dcid: Buffer; scid?: Buffer; token?: Buffer; pn: number; frames: Buffer; minPayload?: number }): Buffer {
  const scid = o.scid ?? Buffer.from('c0ffee00', 'hex');
  const token = o.token ?? Buffer.alloc(0);
  const payload = Buffer.concat([o.frames, Buffer.alloc(Math.max(0, (o.minPayload ?? 0) - o.frames.length))]);
  const pnBytes = Buffer.alloc(4);
  pnBytes.writeUInt32BE(o.pn);
  const head = Buffer.concat([
    Buffer.of(0xc3, 0, 0, 0, 1, o.dcid.length), o.dcid, Buffer.of(scid.length), scid,
    varint(token.length), token, varint2(4 + payload.length + 16),
  ]);
  const header = Buffer.concat([head, pnBytes]);
  return seal(clientInitialKeys(o.dcid), header, head.length, o.pn, payload);
}

/** A TLS 1.3-shaped ClientHello handshake message with `sni` (none when undefined) and `pad` bytes of padding. */
export function clientHello(sni: string | undefined, pad = 0): Buffer {
  const exts: Buffer[] = [];
  if (sni !== undefined) {
    const name = Buffer.from(sni, 'ascii');
    const entry = Buffer.concat([Buffer.of(0), u16(name.length), name]);
    const list = Buffer.concat([u16(entry.length), entry]);
    exts.push(Buffer.concat([u16(0), u16(list.length), list]));
  }
  if (pad > 0) exts.push(Buffer.concat([u16(0x15), u16(pad), Buffer.alloc(pad)]));
  const extBytes = Buffer.concat(exts);
  const body = Buffer.concat([
    Buffer.of(3, 3), Buffer.alloc(32, 7), Buffer.of(0), u16(2), Buffer.of(0x13, 0x01), Buffer.of(1, 0),
    u16(extBytes.length), extBytes,
  ]);
  const len = Buffer.alloc(3);
  len.writeUIntBE(body.length, 0, 3);
  return Buffer.concat([Buffer.of(1), len, body]);
}

function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}
