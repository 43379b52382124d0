// Dependency rule: stream-routes/ and protocols/stream/ import from src/ (and stream-routes/), never from
// another protocols/ folder; src/ never imports them (except the composition root src/main.ts).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm)) {
    const spec = m[1]!;
    if (spec.startsWith('.')) out.push(path.relative(root, path.resolve(path.dirname(file), spec)));
  }
  return out;
}

describe('stream layering', () => {
  it('protocols/stream imports no other protocols/ folder', () => {
    for (const f of files(path.join(root, 'protocols/stream'))) {
      for (const target of imports(f)) {
        if (target.startsWith('protocols/')) expect(target.startsWith('protocols/stream/'), `${f} -> ${target}`).toBe(true);
      }
    }
  });

  it('stream-routes imports neither protocols/ nor anything outside src/ and itself', () => {
    for (const f of files(path.join(root, 'stream-routes'))) {
      for (const target of imports(f)) {
        expect(target.startsWith('src/') || target.startsWith('stream-routes/'), `${f} -> ${target}`).toBe(true);
      }
    }
  });

  it('src/ imports stream-routes/ and protocols/ only from src/main.ts', () => {
    for (const f of files(path.join(root, 'src'))) {
      if (path.relative(root, f) === 'src/main.ts') continue;
      for (const target of imports(f)) {
        expect(target.startsWith('stream-routes/') || target.startsWith('protocols/'), `${f} -> ${target}`).toBe(false);
      }
    }
  });
});
