// Regular expressions written by users and run against request data (uri-blocker block_rules, ua-restriction
// lists). A backtracking engine lets one crafted pattern, or one crafted request against an innocent-looking
// pattern such as `(a+)+$`, pin a worker for seconds (ReDoS). These patterns are therefore compiled with V8's
// linear-time engine (the `l` flag, behind --enable-experimental-regexp-engine, which only adds that flag and
// changes no other RegExp): matching costs O(pattern x subject) whatever the input.
//
// What the linear engine refuses is refused at schema-check time with a clear message: backreferences,
// lookahead, and bounded repetitions above {n,16}. Lookbehind, classes, alternation, unbounded and lazy
// quantifiers work. The engine has no case-insensitive mode: `caseInsensitive` lower-cases the pattern's
// literals (escape sequences are kept, so `\D`, `\W`, `\S` keep their meaning) and the subject.
// PCRE-only syntax (APISIX uses PCRE) such as inline `(?i)` is rejected as a syntax error.
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--enable-experimental-regexp-engine');

function linearFlagWorks(): boolean {
  try {
    new RegExp('a', 'l');
    return true;
  } catch {
    return false;
  }
}

// Node 24 (package.json engines) has the engine; without it user regexes would be a ReDoS hazard: fail loudly.
if (!linearFlagWorks()) throw new Error('V8 linear-time RegExp engine unavailable: user regexes cannot be made ReDoS-safe');

export interface UserRegex {
  /** The pattern as the user wrote it. */
  readonly source: string;
  /** Whether the pattern matches anywhere in `subject` (PCRE find semantics). */
  test(subject: string): boolean;
}

class LinearRegex implements UserRegex {
  readonly source: string;
  readonly #re: RegExp;
  readonly #lower: boolean;

  constructor(source: string, re: RegExp, lower: boolean) {
    this.source = source;
    this.#re = re;
    this.#lower = lower;
  }

  // hot path
  test(subject: string): boolean {
    return this.#re.test(this.#lower ? subject.toLowerCase() : subject);
  }
}

/** Lower-cases every character of a pattern except the one following a backslash. */
function lowerLiterals(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) {
      out += c + pattern[i + 1]!;
      i++;
    } else {
      out += c.toLowerCase();
    }
  }
  return out;
}

/** Compiles one user pattern (config time). Returns the matcher or an error message naming the pattern. */
export function compileUserRegex(pattern: string, caseInsensitive = false): UserRegex | string {
  try {
    const re = new RegExp(caseInsensitive ? lowerLiterals(pattern) : pattern, 'l');
    return new LinearRegex(pattern, re, caseInsensitive);
  } catch (err) {
    const msg = (err as Error).message;
    if (msg.includes('linear time')) {
      return (
        `pattern "${pattern}" is not allowed: it cannot be matched in linear time ` +
        '(backreferences, lookahead and bounded repetition above {n,16} are refused to prevent ReDoS)'
      );
    }
    return `invalid regular expression "${pattern}": ${msg.replace(/^Invalid regular expression: /, '')}`;
  }
}

/** Compiles several patterns; the first error message, or the matchers. */
export function compileUserRegexes(patterns: readonly string[], caseInsensitive = false): UserRegex[] | string {
  const out: UserRegex[] = [];
  for (const p of patterns) {
    const r = compileUserRegex(p, caseInsensitive);
    if (typeof r === 'string') return r;
    out.push(r);
  }
  return out;
}

/** Whether any of `regexes` matches `subject`. */
export function anyMatch(regexes: readonly UserRegex[], subject: string): boolean {
  for (let i = 0; i < regexes.length; i++) if (regexes[i]!.test(subject)) return true;
  return false;
}
