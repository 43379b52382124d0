// 32-bit string hash for the consistent-hash ring: FNV-1a over UTF-16 code units followed by the murmur3
// finaliser, which spreads the short, similar keys a ring sees (`10.0.0.1:80#17`, client addresses) evenly.

export function hash32(s: string): number {
  // hot path
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
