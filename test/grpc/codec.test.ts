// The grpc-web plugin's streaming base64 decoder against Node's own decoder: any bytes, encoded as one or
// several padded segments (a client flushing several times), cut into chunks anywhere, decode to the same
// bytes; malformed text is refused. The trailer frame layout is checked byte by byte.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Base64StreamDecoder, trailerFrame } from '../../src/plugin/builtin/grpc-web/codec.ts';

function decodeInPieces(text: string, cuts: number[]): Buffer {
  const d = new Base64StreamDecoder();
  const out: Buffer[] = [];
  let at = 0;
  for (const c of [...cuts.filter((x) => x < text.length)].sort((a, b) => a - b).concat(text.length)) {
    out.push(d.push(Buffer.from(text.slice(at, c), 'latin1')));
    at = c;
  }
  d.finish();
  return Buffer.concat(out);
}

describe('Base64StreamDecoder', () => {
  test('any segments, any chunking: the original bytes (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 5 }), fc.array(fc.nat({ max: 300 }), { maxLength: 12 }), (segments, cuts) => {
        const text = segments.map((s) => Buffer.from(s).toString('base64')).join('');
        expect(decodeInPieces(text, cuts).equals(Buffer.concat(segments.map((s) => Buffer.from(s))))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  test('whitespace between quads is ignored', () => {
    expect(decodeInPieces('QUJD\r\nREVG', [3, 5]).toString()).toBe('ABCDEF');
  });

  test.each(['QQ=', 'Q===', 'QU!D', 'QQ==Q', 'QUJ==', 'QUJDRA'])('refuses %s', (bad) => {
    expect(() => decodeInPieces(bad, [1])).toThrow();
  });
});

describe('trailerFrame', () => {
  test('0x80, big-endian length, grpc-status then grpc-message then other trailers', () => {
    const f = trailerFrame('0', '', { 'grpc-status': '0', 'grpc-message': '', 'x-a': 'b' });
    const block = 'grpc-status:0\r\ngrpc-message:\r\nx-a:b\r\n';
    expect(f[0]).toBe(0x80);
    expect(f.readUInt32BE(1)).toBe(block.length);
    expect(f.subarray(5).toString()).toBe(block);
  });
});
