// The error catalog (src/errors.ts): codes and messages are unique, every entry is used somewhere in the
// sources (an unused entry is dead and gets deleted), HTTP replies have the shapes the gateway sends.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { catalogReply, ERRORS, type ErrorCode } from '../src/errors.ts';

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

const root = path.resolve(import.meta.dirname, '..');
const code = ['src', 'protocols', 'stream-routes']
  .flatMap((d) => sources(path.join(root, d)))
  .filter((p) => !p.endsWith(path.join('src', 'errors.ts')))
  .map((p) => readFileSync(p, 'utf8'))
  .join('\n');

describe('error catalog', () => {
  const codes = Object.keys(ERRORS) as ErrorCode[];

  it('codes follow the SWY_ERR_ pattern and messages are unique', () => {
    for (const c of codes) expect(c).toMatch(/^SWY_ERR_[A-Z0-9_]+$/);
    const messages = codes.map((c) => ERRORS[c].message);
    expect(new Set(messages).size).toBe(messages.length);
  });

  it.each(codes)('%s is used by the sources', (c) => {
    expect(code.includes(`'${c}'`) || code.includes(`ERRORS.${c}`)).toBe(true);
  });

  it('HTTP replies: JSON entries carry error_msg, HTML entries no body', () => {
    expect(catalogReply('SWY_ERR_ROUTE_NOT_FOUND')).toEqual({ status: 404, body: { error_msg: '404 Route Not Found' } });
    expect(catalogReply('SWY_ERR_UPSTREAM_TIMEOUT')).toEqual({ status: 504 });
    expect(() => catalogReply('SWY_ERR_STORE_CONFLICT')).toThrow(/not an HTTP reply/);
  });
});
