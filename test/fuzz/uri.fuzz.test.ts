// Fuzz target: the request-path and host normalization before routing (src/router/uri.ts).
// Inputs: paths built from a dictionary of tricky segments (dot segments plain and percent-encoded, encoded
// slashes, double encodings, `;params`, NUL, bad escapes, UTF-8 plain and encoded, empty segments), random
// strings over the characters that matter, and any string; hosts built from labels with case, ports, trailing
// dots, IPv6 literals, plus any string.
// Properties: never throws; a normalized path starts with `/` and has no `//`, `/./`, `/../` and no trailing
// `/.` or `/..`; it equals a reference written here from RFC 3986 5.2.4 remove_dot_segments over the
// percent-decoded bytes with slashes merged (a path climbing above the root is refused by both); the forward
// path normalizes to the matched path, and normalizing it again changes nothing (idempotent); options only
// do what they say. Hosts: lower case, no port, no trailing dot, stable when normalized again, unchanged by
// case, a port or trailing dots on the input.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeHost, normalizeRequestPath, type NormalizeOptions } from '../../src/router/uri.ts';
import { params, runs } from './runs.ts';

const SEGMENTS = [
  'a', 'b', 'admin', '', '.', '..', '%2e', '%2E', '%2e%2e', '.%2E', '%2E.', '...', '%2f', '%2F', 'a%2F..', '%2F..%2F',
  '%25', '%252e%252e', '%252F', 'é', '%C3%A9', '%c3', '%ff', '%00', '%zz', '%', '%2', 'a;b', ';', '..;x', '.;', ';x',
  '%3B', 'a b', '%20', '~', 'x.', '.x', 'a%2fb',
];
const PATH_CHARS = ['/', '/', '.', '.', '%', '2', 'e', 'E', 'f', 'F', ';', 'a', '0', '5', 'c'];

const path = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.array(fc.constantFrom(...SEGMENTS), { maxLength: 7 }), fc.boolean()).map(([s, tail]) => '/' + s.join('/') + (tail ? '/' : '')) },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(...PATH_CHARS), maxLength: 24 }).map((s) => '/' + s) },
  { weight: 1, arbitrary: fc.string({ maxLength: 16 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }).map((s) => '/' + s) },
);
const opts = fc.record({ deleteTailSlash: fc.boolean(), servlet: fc.boolean() });

// ---- the reference: decode to bytes, merge slashes, RFC 3986 5.2.4 remove_dot_segments ----

/** Percent-decoding to a byte string (latin1); null on a malformed escape or an encoded NUL (nginx: 400). */
function refDecode(raw: string): string | null {
  const bytes = Buffer.from(raw, 'utf8').toString('latin1');
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== '%') {
      out += bytes[i];
      continue;
    }
    const hex = bytes.slice(i + 1, i + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) return null;
    const b = parseInt(hex, 16);
    if (b === 0) return null;
    out += String.fromCharCode(b);
    i += 2;
  }
  return out;
}

/** RFC 3986 5.2.4, literally (rules A-E on an input and an output buffer); null when `..` climbs above the root. */
function removeDotSegments(input: string): string | null {
  let out = '';
  while (input.length > 0) {
    if (input.startsWith('../')) input = input.slice(3);
    else if (input.startsWith('./')) input = input.slice(2);
    else if (input.startsWith('/./')) input = input.slice(2);
    else if (input === '/.') input = '/';
    else if (input.startsWith('/../') || input === '/..') {
      input = '/' + input.slice(input === '/..' ? 3 : 4);
      if (out === '') return null;
      out = out.slice(0, Math.max(0, out.lastIndexOf('/')));
    } else if (input === '.' || input === '..') input = '';
    else {
      const next = input.indexOf('/', 1);
      const seg = next < 0 ? input : input.slice(0, next);
      out += seg;
      input = next < 0 ? '' : input.slice(next);
    }
  }
  return out === '' ? '/' : out;
}

function reference(raw: string, o: NormalizeOptions): string | null {
  if (!raw.startsWith('/')) return null;
  const decoded = refDecode(raw);
  if (decoded === null) return null;
  const resolved = removeDotSegments(decoded.replace(/\/{2,}/g, '/'));
  if (resolved === null) return null;
  let p = Buffer.from(resolved, 'latin1').toString('utf8');
  if (o.deleteTailSlash && p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

function wellFormed(p: string): void {
  expect(p.startsWith('/')).toBe(true);
  expect(p).not.toMatch(/\/\/|\/\.\/|\/\.\.\/|\/\.\.?$/);
}

const N_PATH = runs(3000);
const N_HOST = runs(2000);

describe('fuzz: request path normalization', () => {
  it(`matches the RFC 3986 remove_dot_segments reference; forward path normalizes to the matched one (${N_PATH} inputs)`, () => {
    fc.assert(
      fc.property(path, opts, (raw, o) => {
        const r = normalizeRequestPath(raw, o);
        const noServlet = { ...o, servlet: false };
        const want = reference(raw, noServlet);
        if (!o.servlet) {
          expect(r.ok ? r.path : null, JSON.stringify(raw)).toBe(want);
        } else if (r.ok) {
          // Servlet semantics cut `;params`; without any `;` they change nothing.
          if (!raw.includes(';') && !/%3b/i.test(raw)) expect(r.path).toBe(want);
        } else if (want !== null) {
          // Refused only for a dot segment hidden behind params (`..;x`, `.;`, `;` as an empty segment).
          expect(r.reason).toBe('dot segment with parameters');
        }
        if (!r.ok) return;
        wellFormed(r.path);
        if (!o.servlet) {
          // The upstream receives a path that normalizes to what was matched, and is stable.
          const again = normalizeRequestPath(r.forward, o);
          expect(again, JSON.stringify(r)).toEqual({ ok: true, path: r.path, forward: r.forward });
        }
        if (o.deleteTailSlash) expect(r.path === '/' || !r.path.endsWith('/')).toBe(true);
      }),
      params(N_PATH),
    );
  });

  it(`any string: a value, never an exception (${N_PATH} inputs)`, () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 30 }), opts, (raw, o) => {
        const r = normalizeRequestPath(raw, o);
        if (r.ok) wellFormed(r.path);
        else expect(typeof r.reason).toBe('string');
      }),
      params(N_PATH),
    );
  });
});

const label = fc.string({ unit: fc.constantFrom(...'abcXYZ019-'.split('')), minLength: 1, maxLength: 6 });
const hostname = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
const ipv6 = fc.ipV6();
const host = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(hostname, fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }), fc.nat(2)).map(([h, p, dots]) => h + '.'.repeat(dots) + (p === undefined ? '' : `:${p}`)) },
  { weight: 1, arbitrary: fc.tuple(ipv6, fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined })).map(([a, p]) => `[${a}]${p === undefined ? '' : `:${p}`}`) },
  { weight: 2, arbitrary: fc.string({ maxLength: 14 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...'a.:[]1 /\\A\u0000\u007f'.split('')), maxLength: 10 }) },
);

describe('fuzz: host normalization', () => {
  it('regression (found by this target): an IP literal must be IPv6, a name holds no colon or bracket', () => {
    // `[/]` became the host `/`, `[.]` the host `.`, `[[]` the host `[` and `:[:` the host `:[`.
    for (const h of ['[/]', '[.]', '[[]', '[]', '[a b]', '[\\x]:80', ':[:', 'a:b:80', 'a]']) expect(normalizeHost(h), h).toBeNull();
    expect(normalizeHost('[::1]:9080')).toBe('::1');
    expect(normalizeHost('[FE80::1]')).toBe('fe80::1');
  });

  it(`lower case, no port, no trailing dot, stable, independent of case, port and trailing dots (${N_HOST} inputs)`, () => {
    fc.assert(
      fc.property(host, fc.integer({ min: 0, max: 65535 }), (h, port) => {
        const n = normalizeHost(h);
        if (n === null || n === '') return;
        expect(n).toBe(n.toLowerCase());
        expect(n.endsWith('.')).toBe(false);
        expect(n).not.toMatch(/[\s/\\\u0000-\u001f\u007f]/);
        // Fed back as an authority (IPv6 bracketed again) it normalizes to itself.
        expect(normalizeHost(n.includes(':') ? `[${n}]` : n)).toBe(n);
        if (!n.includes(':')) {
          expect(n).not.toMatch(/:\d*$/);
          expect(normalizeHost(n.toUpperCase())).toBe(n);
          expect(normalizeHost(`${n}.:${port}`)).toBe(n);
          expect(normalizeHost(`${n.toUpperCase()}..`)).toBe(n);
        } else {
          expect(normalizeHost(`[${n.toUpperCase()}]:${port}`)).toBe(n);
        }
      }),
      params(N_HOST),
    );
  });
});
