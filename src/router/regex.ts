// Translates the PCRE patterns APISIX users write (ngx.re, flags "jo"/"joi") into JavaScript RegExps once, at
// config time. Covered: leading inline flags `(?i)`, `(?s)`, `(?m)`; `\A`, `\z`, `\Z`, `\h`; `\Q...\E`;
// `(?P<name>`, `(?P=name)`; a `]` right after `[`/`[^` as a literal. Constructs JavaScript cannot express
// (possessive quantifiers, atomic groups, recursion, `(?x)`) fail to compile and are reported as errors.

export class RegexError extends Error {}

const END = '(?![\\s\\S])';

function escapeLiteral(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

function leadingFlags(src: string, flags: Set<string>): number {
  let pos = 0;
  for (;;) {
    const m = /^\(\?([a-zA-Z]+)\)/.exec(src.slice(pos));
    if (!m) return pos;
    for (const f of m[1]) {
      if (f !== 'i' && f !== 's' && f !== 'm') throw new RegexError(`unsupported inline flag '${f}'`);
      flags.add(f);
    }
    pos += m[0].length;
  }
}

/** Translates a PCRE pattern to JavaScript source; adds needed flags to `flags`. Throws RegexError. */
export function translatePcre(src: string, flags: Set<string>): string {
  let out = '';
  let i = leadingFlags(src, flags);
  let inClass = false;
  while (i < src.length) {
    const c = src[i];
    if (c === '\\') {
      const n = src[i + 1];
      if (n === undefined) throw new RegexError('pattern ends with a backslash');
      if (n === 'Q') {
        const end = src.indexOf('\\E', i + 2);
        const lit = src.slice(i + 2, end < 0 ? src.length : end);
        out += escapeLiteral(lit);
        i = end < 0 ? src.length : end + 2;
        continue;
      }
      if (n === 'E') {
        i += 2;
        continue;
      }
      if (n === 'h') out += inClass ? ' \\t' : '[ \\t]';
      else if (!inClass && n === 'A') out += '^';
      else if (!inClass && n === 'z') out += END;
      else if (!inClass && n === 'Z') out += `(?=\\n?${END})`;
      else out += c + n;
      i += 2;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      i++;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      i++;
      if (src[i] === '^') {
        out += '^';
        i++;
      }
      if (src[i] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (c === '(' && src.startsWith('(?P<', i)) {
      out += '(?<';
      i += 4;
      continue;
    }
    if (c === '(' && src.startsWith('(?P=', i)) {
      const close = src.indexOf(')', i);
      if (close < 0) throw new RegexError('unterminated (?P= back reference');
      out += `\\k<${src.slice(i + 4, close)}>`;
      i = close + 1;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

/** Compiles a PCRE pattern once; `caseless` adds the `i` flag (the `~*` operator). Throws RegexError. */
export function compilePcre(pattern: string, caseless: boolean): RegExp {
  const flags = new Set<string>();
  if (caseless) flags.add('i');
  const source = translatePcre(pattern, flags);
  try {
    return new RegExp(source, [...flags].join(''));
  } catch (err) {
    throw new RegexError((err as Error).message, { cause: err });
  }
}
