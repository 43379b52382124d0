// csrf (APISIX priority 2980): double-submit cookie protection, token-compatible with APISIX's csrf.lua.
// - header_filter: every response gets `Set-Cookie: <name>=<token>;path=/;SameSite=Lax;Expires=<cookie time>`.
// - access: GET, HEAD and OPTIONS pass; other methods need the header `<name>` equal to the cookie `<name>`, and
//   the token must carry a valid signature, not older than `expires` seconds (0: never expires). Failures are
//   401 {"error_msg": ...}: "no csrf token in headers", "no csrf cookie", "csrf token mismatch",
//   "Failed to verify the csrf token signature".
// Token: base64 (standard, padded) of JSON {random, expires, sign} where `expires` is the issue time in
// seconds, `random` a number in [0,1) and `sign` = hex(sha256("{expires:<e>,random:<r>,key:<key>}")), numbers
// written as Lua's tostring writes them (%.14g). Tokens issued by APISIX verify here and the reverse.
// The key never leaves the process; signatures are compared in constant time.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { parseCookie } from 'cookie';
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    key: { description: 'use to generate csrf token', type: 'string' },
    expires: { description: 'expires time(s) for csrf token', type: 'integer', default: 7200 },
    name: { description: 'the csrf token name', type: 'string', default: 'apisix-csrf-token' },
  },
  encrypt_fields: ['key'],
  required: ['key'],
};

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const SIGN = /^[0-9a-f]{64}$/;

const reject = (error_msg: string): PluginResponse => ({ status: 401, body: { error_msg } });
const NO_HEADER = reject('no csrf token in headers');
const NO_COOKIE = reject('no csrf cookie');
const MISMATCH = reject('csrf token mismatch');
const BAD_SIGNATURE = reject('Failed to verify the csrf token signature');

/** A number as Lua 5.1 / LuaJIT `tostring` (and cjson) writes it: C's `%.14g`. */
export function luaNumber(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const [mantissa, expText] = x.toExponential(13).split('e') as [string, string];
  const exp = Number(expText);
  if (exp < -4 || exp >= 14) {
    const m = mantissa.includes('.') ? mantissa.replace(/0+$/, '').replace(/\.$/, '') : mantissa;
    const sign = exp < 0 ? '-' : '+';
    const digits = String(Math.abs(exp)).padStart(2, '0');
    return `${m}e${sign}${digits}`;
  }
  const fixed = x.toFixed(13 - exp);
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed;
}

/** hex(sha256("{expires:<e>,random:<r>,key:<key>}")): APISIX csrf.lua gen_sign. */
export function csrfSign(random: string, expires: string, key: string): string {
  return createHash('sha256').update(`{expires:${expires},random:${random},key:${key}}`).digest('hex');
}

/** nginx's ngx_http_cookie_time: `Thu, 18-Nov-10 11:27:35 GMT` (two-digit year up to 2037). */
export function cookieTime(epochSeconds: number): string {
  const d = new Date(epochSeconds * 1000);
  const [wday, , mon] = d.toUTCString().split(' ') as [string, string, string];
  const year = d.getUTCFullYear();
  const yy = year > 2037 ? String(year) : String(year % 100).padStart(2, '0');
  const p2 = (n: number) => String(n).padStart(2, '0');
  return `${wday} ${p2(d.getUTCDate())}-${mon}-${yy} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} GMT`;
}

/** Lua's view of a JSON field used in string concatenation: numbers via %.14g, strings as they are. */
function luaText(v: unknown): string | undefined {
  if (typeof v === 'number') return luaNumber(v);
  if (typeof v === 'string') return v;
  return undefined;
}

/** Lua arithmetic coerces numeric strings. */
function luaArith(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

class Csrf implements PluginInstance {
  readonly #key: string;
  readonly #name: string;
  readonly #expires: number;

  constructor(conf: JsonObject) {
    this.#key = String(conf.key);
    this.#name = String(conf.name ?? 'apisix-csrf-token');
    this.#expires = typeof conf.expires === 'number' ? conf.expires : 7200;
  }

  access(ctx: HttpContext): PluginResponse | undefined {
    const req = ctx.request;
    if (SAFE_METHODS.has(req.method)) return undefined;
    const header = req.headers[this.#name.toLowerCase()];
    if (header === undefined || header === '') return NO_HEADER;
    const rawCookie = req.headers.cookie;
    const cookieHeader = Array.isArray(rawCookie) ? rawCookie.join('; ') : rawCookie;
    // nginx's $cookie_<name> is the raw (undecoded) value of the first cookie of that name.
    const cookie = cookieHeader === undefined ? undefined : parseCookie(cookieHeader, { decode: (s) => s })[this.#name];
    if (cookie === undefined) return NO_COOKIE;
    if (header !== cookie) return MISMATCH;
    return this.#verify(cookie) ? undefined : BAD_SIGNATURE;
  }

  header_filter(ctx: HttpContext): void {
    const now = nowSeconds();
    const cookie = `${this.#name}=${this.#issue(now)};path=/;SameSite=Lax;Expires=${cookieTime(now + this.#expires)}`;
    const prev = ctx.response.headers['set-cookie'];
    ctx.response.setHeader('set-cookie', prev === undefined ? cookie : [...(Array.isArray(prev) ? prev : [prev]), cookie]);
  }

  /** A fresh token (APISIX gen_csrf_token); `random` has 14 significant digits, as Lua prints it. */
  #issue(now: number): string {
    const random = luaNumber(randomBytes(6).readUIntBE(0, 6) / 2 ** 48);
    const expires = luaNumber(now);
    const sign = csrfSign(random, expires, this.#key);
    return Buffer.from(`{"random":${random},"expires":${expires},"sign":"${sign}"}`).toString('base64');
  }

  #verify(token: string): boolean {
    if (!BASE64.test(token)) return false;
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(token, 'base64').toString('utf8'));
    } catch {
      return false;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return false;
    const t = parsed as Record<string, unknown>;
    const random = luaText(t.random);
    const expires = luaText(t.expires);
    const issued = luaArith(t.expires);
    if (random === undefined || expires === undefined || issued === undefined) return false;
    if (this.#expires > 0 && nowSeconds() - issued > this.#expires) return false;
    const sign = t.sign;
    if (typeof sign !== 'string' || !SIGN.test(sign)) return false;
    return timingSafeEqual(Buffer.from(sign), Buffer.from(csrfSign(random, expires, this.#key)));
  }
}

export const csrfPlugin: PluginDef = {
  name: 'csrf',
  version: '0.1',
  priority: 2980,
  schema,
  encryptFields: ['key'],
  subsystems: ['http'],
  status: 'stable',
  create(conf) {
    return new Csrf(conf);
  },
};

export default csrfPlugin;
