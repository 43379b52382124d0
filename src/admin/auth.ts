// Admin API access control: `allow_admin` CIDRs (checked first, like APISIX's nginx allow/deny) and the admin
// token (`?api_key=`, then header `X-API-KEY`, then cookie `X-API-KEY`) with admin/viewer roles.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export interface AdminKey {
  readonly name: string;
  readonly key: string;
  readonly role: 'admin' | 'viewer';
}

export type AuthResult = { ok: true } | { ok: false; description: 'missing apikey' | 'wrong apikey' | 'invalid method for role viewer' };

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Parses `allow_admin`; null means "allow all" (empty or unset). Throws on an invalid entry (config time). */
export function buildAllowList(cidrs: readonly string[] | undefined): BlockList | null {
  if (!cidrs || cidrs.length === 0) return null;
  const list = new BlockList();
  for (const entry of cidrs) {
    const [addr = '', bits] = entry.trim().split('/');
    const type = isIPv4(addr) ? 'ipv4' : isIPv6(addr) ? 'ipv6' : null;
    if (!type) throw new Error(`allow_admin: invalid address ${JSON.stringify(entry)}`);
    if (bits === undefined) {
      list.addAddress(addr, type);
    } else {
      const prefix = Number(bits);
      const max = type === 'ipv4' ? 32 : 128;
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) {
        throw new Error(`allow_admin: invalid prefix in ${JSON.stringify(entry)}`);
      }
      list.addSubnet(addr, prefix, type);
    }
  }
  return list;
}

export function isAllowed(list: BlockList | null, remote: string | undefined): boolean {
  if (list === null) return true;
  if (!remote) return false;
  const mapped = remote.startsWith('::ffff:') ? remote.slice(7) : remote;
  if (isIPv4(mapped)) return list.check(mapped, 'ipv4') || list.check(remote, 'ipv6');
  return isIPv6(remote) && list.check(remote, 'ipv6');
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  const lower = name.toLowerCase();
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim().toLowerCase() === lower) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export class AdminAuth {
  readonly #keys: readonly { digest: Buffer; role: 'admin' | 'viewer' }[];
  readonly #enabled: boolean;

  constructor(keys: readonly AdminKey[], required: boolean) {
    // Keys with an empty secret never match (APISIX replaces them at startup; we refuse them instead).
    this.#keys = keys.filter((k) => k.key !== '').map((k) => ({ digest: digest(k.key), role: k.role }));
    this.#enabled = required && keys.length > 0;
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  check(req: IncomingMessage, query: URLSearchParams): AuthResult {
    if (!this.#enabled) return { ok: true };
    const header = req.headers['x-api-key'];
    const token =
      query.get('api_key') ??
      (Array.isArray(header) ? header[0] : header) ??
      cookieValue(req.headers.cookie, 'X-API-KEY');
    if (token === undefined) return { ok: false, description: 'missing apikey' };
    const d = digest(token);
    let role: 'admin' | 'viewer' | undefined;
    // Every key is compared, so the time taken does not reveal which (or whether one) matched.
    for (const k of this.#keys) {
      if (timingSafeEqual(k.digest, d) && role === undefined) role = k.role;
    }
    if (role === undefined) return { ok: false, description: 'wrong apikey' };
    if (role === 'viewer' && req.method !== 'GET') return { ok: false, description: 'invalid method for role viewer' };
    return { ok: true };
  }
}
