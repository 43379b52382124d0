// The browser session of the authorization-code flow, kept client-side in one cookie sealed with AES-256-GCM
// (key derived with HKDF-SHA256 from `session.secret`; the cookie name is bound as additional data, so a
// value cannot be moved to another cookie). A value that fails to open, or is past one of its timeouts, is
// simply no session. Cookie attributes follow the `session` conf (lua-resty-session 4 defaults: path /,
// HttpOnly, SameSite Lax).
// Timeouts as lua-resty-session 4 (0 disables one): `idling_timeout` (900 s) ends a session unused that long;
// `rolling_timeout` (3600 s) ends a session not renewed within it; `absolute_timeout` (86400 s) ends it
// whatever its use. Each request on a live session refreshes it (lua-resty-session's session:refresh(), run
// by lua-resty-openidc's session start): renewed (a new rolling period) once 3/4 of the rolling period is
// spent, else touched (idle clock reset) once it was idle for a quarter of idling_timeout (at most 60 s),
// so a session in use is re-sealed at most that often.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { parseCookie, stringifySetCookie, type SetCookie } from 'cookie';
import type { JsonObject } from '../../../config/resources.ts';

export interface SessionData {
  /** Absolute expiry, seconds since the epoch. */
  exp: number;
  /** Last use (seconds since the epoch): idling_timeout counts from it. */
  at?: number;
  /** Start of the current rolling period (seconds since the epoch). */
  rolled?: number;
  /** When the last login's callback succeeded (refresh_session_interval counts from it). */
  last_authenticated?: number;
  /** Pending login (between the redirect to the OP and the callback). */
  state?: string;
  nonce?: string;
  verifier?: string;
  original_url?: string;
  /** Authenticated session. */
  id_token?: Record<string, unknown>;
  enc_id_token?: string;
  access_token?: string;
  /** The `scope` of the token response (used when the access token is not a JWT). */
  scope?: string;
  /** Access token expiry, seconds since the epoch. */
  expires_at?: number;
  refresh_token?: string;
  user?: Record<string, unknown>;
}

const IV = 12;
const TAG = 16;
/** Browsers drop cookies above 4096 bytes (name, value and attributes). */
export const COOKIE_LIMIT = 4096;
/** absolute_timeout 0 (no limit) as a date a cookie can still carry. */
const NO_LIMIT = 10 * 365 * 86400;

function timeout(v: unknown, dflt: number): number {
  return typeof v === 'number' && v >= 0 ? v : dflt;
}

export class SessionCodec {
  readonly name: string;
  /** Seconds from login to the session's end whatever its use. */
  readonly absoluteTimeout: number;
  readonly idlingTimeout: number;
  readonly rollingTimeout: number;
  readonly #touchAfter: number;
  readonly #key: Buffer;
  readonly #aad: Buffer;
  readonly #attrs: Omit<SetCookie, 'name' | 'value'>;
  readonly #secureFlag: boolean | undefined;

  constructor(conf: JsonObject) {
    const secret = String(conf.secret);
    this.name = typeof conf.cookie_name === 'string' ? conf.cookie_name : 'session';
    const legacy = (conf.cookie as JsonObject | undefined)?.lifetime;
    const absolute = timeout(conf.absolute_timeout ?? legacy, 86400);
    this.absoluteTimeout = absolute === 0 ? NO_LIMIT : absolute;
    this.idlingTimeout = timeout(conf.idling_timeout, 900);
    this.rollingTimeout = timeout(conf.rolling_timeout, 3600);
    this.#touchAfter = Math.min(60, Math.floor(this.idlingTimeout / 4));
    this.#key = Buffer.from(hkdfSync('sha256', secret, 'switchyard-openid-connect', 'session cookie v1', 32));
    this.#aad = Buffer.from(this.name);
    const sameSite = typeof conf.cookie_same_site === 'string' ? conf.cookie_same_site.toLowerCase() : 'lax';
    this.#attrs = {
      path: typeof conf.cookie_path === 'string' ? conf.cookie_path : '/',
      httpOnly: conf.cookie_http_only !== false,
      ...(typeof conf.cookie_domain === 'string' ? { domain: conf.cookie_domain } : {}),
      ...(sameSite === 'default' ? {} : { sameSite: sameSite as 'lax' | 'strict' | 'none' }),
    };
    this.#secureFlag = typeof conf.cookie_secure === 'boolean' ? conf.cookie_secure : undefined;
  }

  /** The session in the request's Cookie header, or null. */
  read(cookieHeader: string | string[] | undefined, nowSec: number): SessionData | null {
    if (cookieHeader === undefined) return null;
    const header = Array.isArray(cookieHeader) ? cookieHeader.join('; ') : cookieHeader;
    const raw = parseCookie(header)[this.name];
    if (raw === undefined) return null;
    const data = this.open(raw);
    if (data === null || typeof data.exp !== 'number' || data.exp <= nowSec) return null;
    if (this.idlingTimeout > 0 && typeof data.at === 'number' && nowSec > data.at + this.idlingTimeout) return null;
    if (this.rollingTimeout > 0 && typeof data.rolled === 'number' && nowSec > data.rolled + this.rollingTimeout) return null;
    return data;
  }

  /** Stamps a session saved for the first time: its idle clock and rolling period start now. */
  start(data: SessionData, nowSec: number): SessionData {
    data.at ??= nowSec;
    data.rolled ??= nowSec;
    return data;
  }

  /** Renews or touches a live session (see the top of the file); true when it must be sent again. */
  refresh(data: SessionData, nowSec: number): boolean {
    const rolled = data.rolled ?? nowSec;
    if (this.rollingTimeout > 0 && (nowSec - rolled) * 4 >= this.rollingTimeout * 3) {
      data.rolled = data.at = nowSec;
      return true;
    }
    if (this.idlingTimeout > 0 && nowSec - (data.at ?? nowSec) >= Math.max(1, this.#touchAfter)) {
      data.at = nowSec;
      return true;
    }
    return false;
  }

  /** When the cookie stops being a session: the nearest of its timeouts. */
  #ends(data: SessionData): number {
    let end = data.exp;
    if (this.idlingTimeout > 0 && data.at !== undefined) end = Math.min(end, data.at + this.idlingTimeout);
    if (this.rollingTimeout > 0 && data.rolled !== undefined) end = Math.min(end, data.rolled + this.rollingTimeout);
    return end;
  }

  open(value: string): SessionData | null {
    const buf = Buffer.from(value, 'base64url');
    if (buf.length < IV + TAG + 2) return null;
    try {
      const d = createDecipheriv('aes-256-gcm', this.#key, buf.subarray(0, IV));
      d.setAAD(this.#aad);
      d.setAuthTag(buf.subarray(IV, IV + TAG));
      const plain = Buffer.concat([d.update(buf.subarray(IV + TAG)), d.final()]);
      const data = JSON.parse(plain.toString()) as unknown;
      return data !== null && typeof data === 'object' ? (data as SessionData) : null;
    } catch {
      return null;
    }
  }

  seal(data: SessionData): string {
    const iv = randomBytes(IV);
    const c = createCipheriv('aes-256-gcm', this.#key, iv);
    c.setAAD(this.#aad);
    const ct = Buffer.concat([c.update(JSON.stringify(data)), c.final()]);
    return Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64url');
  }

  /** Set-Cookie value storing `data` (expires with the session's nearest timeout). */
  setCookie(data: SessionData, https: boolean): string {
    return stringifySetCookie({
      name: this.name,
      value: this.seal(data),
      ...this.#attrs,
      secure: this.#secureFlag ?? (https || this.#attrs.sameSite === 'none'),
      expires: new Date(this.#ends(data) * 1000),
    });
  }

  /** Set-Cookie value deleting the session. */
  clearCookie(https: boolean): string {
    return stringifySetCookie({
      name: this.name,
      value: '',
      ...this.#attrs,
      secure: this.#secureFlag ?? (https || this.#attrs.sameSite === 'none'),
      expires: new Date(0),
    });
  }
}
