// HPACK/QPACK Huffman decoding (RFC 7541 5.2 and Appendix B, used unchanged by RFC 9204 4.1.2). The decoding
// tree is built once at module load from the canonical code lengths.
import { HUFFMAN_LENGTHS } from './huffman-table.ts';

const EOS = 256;

/** Tree nodes: children at [2n] and [2n+1]; a value < 0 is the leaf of symbol -(v + 1); 0 means absent. */
const tree: Int32Array = (() => {
  const order = HUFFMAN_LENGTHS.map((_, s) => s).sort((a, b) => HUFFMAN_LENGTHS[a]! - HUFFMAN_LENGTHS[b]! || a - b);
  const nodes = new Int32Array(2 * 257 * 2);
  let next = 1;
  let code = 0;
  let prevLen = HUFFMAN_LENGTHS[order[0]!]!;
  for (let i = 0; i < order.length; i++) {
    const sym = order[i]!;
    const len = HUFFMAN_LENGTHS[sym]!;
    if (i > 0) code = (code + 1) * 2 ** (len - prevLen);
    prevLen = len;
    let node = 0;
    for (let b = len - 1; b >= 0; b--) {
      const bit = Math.floor(code / 2 ** b) & 1;
      const slot = 2 * node + bit;
      if (b === 0) nodes[slot] = -(sym + 1);
      else {
        if (nodes[slot] === 0) nodes[slot] = next++;
        node = nodes[slot]!;
      }
    }
  }
  return nodes;
})();

export class HuffmanError extends Error {}

/**
 * Decodes a Huffman-coded string (latin1: header bytes stay bytes). Throws HuffmanError on EOS in the data,
 * padding longer than 7 bits or padding that is not the EOS prefix (all ones), as RFC 7541 5.2 requires.
 */
export function huffmanDecode(buf: Uint8Array, start: number, end: number): string {
  let out = '';
  let node = 0;
  let depth = 0;
  let ones = true;
  for (let i = start; i < end; i++) {
    const byte = buf[i]!;
    for (let b = 7; b >= 0; b--) {
      const bit = (byte >> b) & 1;
      const v = tree[2 * node + bit]!;
      if (bit === 0) ones = false;
      if (v < 0) {
        const sym = -v - 1;
        if (sym === EOS) throw new HuffmanError('EOS symbol in Huffman data');
        out += String.fromCharCode(sym);
        node = 0;
        depth = 0;
        ones = true;
      } else {
        node = v;
        depth++;
      }
    }
  }
  if (depth > 7 || !ones) throw new HuffmanError('invalid Huffman padding');
  return out;
}
