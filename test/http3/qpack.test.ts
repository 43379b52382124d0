// QPACK decoder checked against independent encodings: the Huffman examples of RFC 7541 Appendix C.4/C.6 and
// the encoder-stream and field-section bytes of RFC 9204 Appendix B (as the RFC prints them), plus the limits.
import { describe, expect, it } from 'vitest';
import { huffmanDecode } from '../../protocols/http3/huffman.ts';
import { encodeFieldSection, FieldSectionTooLarge, QpackDecoder, QpackError } from '../../protocols/http3/qpack.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const limits = { maxTableCapacity: 220, maxBlockedStreams: 2, maxFieldSectionSize: 16 * 1024, maxFields: 100 };

describe('Huffman (RFC 7541 Appendix C)', () => {
  it.each([
    ['f1e3 c2e5 f23a 6ba0 ab90 f4ff', 'www.example.com'],
    ['a8eb 1064 9cbf', 'no-cache'],
    ['25a8 49e9 5ba9 7d7f', 'custom-key'],
    ['25a8 49e9 5bb8 e8b4 bf', 'custom-value'],
    ['6402', '302'],
    ['aec3 771a 4b', 'private'],
    ['d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff', 'Mon, 21 Oct 2013 20:13:21 GMT'],
    ['9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3', 'https://www.example.com'],
  ])('%s -> %s', (h, text) => {
    const b = hex(h);
    expect(huffmanDecode(b, 0, b.length)).toBe(text);
  });

  it('rejects padding that is not the EOS prefix, and over-long padding', () => {
    expect(() => huffmanDecode(hex('f1e3 c2e5 f23a 6ba0 ab90 f4fe'), 0, 12)).toThrow();
    expect(() => huffmanDecode(hex('ffff'), 0, 2)).toThrow();
  });
});

describe('QPACK decoder (RFC 9204 Appendix B)', () => {
  it('B.1: literal field line with a static name reference', () => {
    const d = new QpackDecoder(limits);
    expect(d.decode(hex('0000 510b 2f69 6e64 6578 2e68 746d 6c'), 0)).toEqual({ blocked: false, fields: [[':path', '/index.html']] });
    expect(d.takeInstructions()).toBeNull();
  });

  it('B.2: dynamic table inserts, a blocked section, post-base references, acknowledgments', () => {
    const d = new QpackDecoder(limits);
    // The request arrives before the encoder stream: blocked on Required Insert Count 2.
    const section = hex('0381 10 11');
    expect(d.decode(section, 0)).toEqual({ blocked: true, requiredInsertCount: 2 });
    expect(d.onEncoderStream(hex('3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d c10c 2f73 616d 706c 652f 7061 7468'))).toBe(true);
    expect(d.insertCount).toBe(2);
    // Insert Count Increment of 2 on the decoder stream.
    expect(d.takeInstructions()).toEqual(hex('02'));
    expect(d.decode(section, 0, true)).toEqual({
      blocked: false,
      fields: [[':authority', 'www.example.com'], [':path', '/sample/path']],
    });
    // Section Acknowledgment for stream 0.
    expect(d.takeInstructions()).toEqual(hex('80'));
  });

  it('B.3-style: literal-name insert, duplicate, and relative references', () => {
    const d = new QpackDecoder(limits);
    d.onEncoderStream(hex('3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d c10c 2f73 616d 706c 652f 7061 7468'));
    // Insert With Literal Name custom-key: custom-value (B.3), then Duplicate of relative 2 (:authority, B.4).
    d.onEncoderStream(hex('4a63 7573 746f 6d2d 6b65 790c 6375 7374 6f6d 2d76 616c 7565'));
    d.onEncoderStream(hex('02'));
    expect(d.insertCount).toBe(4);
    // Required Insert Count 4 (encoded 5), base 4: relative 0 = abs 3 (dup :authority), 1 = abs 2 (custom-key).
    expect(d.decode(hex('0500 80 81'), 8)).toEqual({
      blocked: false,
      fields: [[':authority', 'www.example.com'], ['custom-key', 'custom-value']],
    });
  });

  it('errors: bad static index, reference beyond the section, too many blocked streams', () => {
    const d = new QpackDecoder(limits);
    expect(() => d.decode(hex('0000 ff3f'), 0)).toThrow(QpackError);
    expect(() => d.decode(hex('0000 80'), 0)).toThrow(QpackError);
    d.decode(hex('0381 10'), 0);
    d.decode(hex('0381 10'), 4);
    expect(() => d.decode(hex('0381 10'), 8)).toThrow(/blocked/);
    expect(() => d.onEncoderStream(hex('3fe901'))).toThrow(QpackError); // capacity above ours
  });

  it('limits: field section size and field count give FieldSectionTooLarge (answered 431)', () => {
    const small = new QpackDecoder({ ...limits, maxFieldSectionSize: 100, maxFields: 3 });
    const big = encodeFieldSection([['x-big', 'v'.repeat(200)]]);
    expect(() => small.decode(big, 0)).toThrow(FieldSectionTooLarge);
    const many = encodeFieldSection([['a', '1'], ['b', '2'], ['c', '3'], ['d', '4']]);
    expect(() => small.decode(many, 0)).toThrow(FieldSectionTooLarge);
  });

  it('our encoder round-trips through the decoder (static exact, static name, literal)', () => {
    const fields: [string, string][] = [[':status', '200'], ['content-type', 'application/x-custom'], ['x-a', 'b'], ['set-cookie', 'k=v']];
    const enc = encodeFieldSection(fields);
    expect(enc.subarray(0, 3)).toEqual(hex('0000 d9')); // :status 200 = static 25
    expect(new QpackDecoder(limits).decode(enc, 0)).toEqual({ blocked: false, fields });
  });
});
