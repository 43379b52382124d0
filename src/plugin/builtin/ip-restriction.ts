// ip-restriction (APISIX priority 3000): allow (whitelist) or deny (blacklist) clients by IP/CIDR.
// HTTP: access phase answers `response_code` with {"message": ...}. Stream: preread closes the session.
import { BlockList, isIP } from 'node:net';
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext, StreamContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';

const ipItem = { type: 'string', minLength: 1 };

const schema: JsonObject = {
  type: 'object',
  properties: {
    message: { type: 'string', minLength: 1, maxLength: 1024, default: 'Your IP address is not allowed' },
    whitelist: { type: 'array', items: ipItem, minItems: 1 },
    blacklist: { type: 'array', items: ipItem, minItems: 1 },
    response_code: { type: 'integer', enum: [403, 404], default: 403 },
  },
  oneOf: [{ required: ['whitelist'] }, { required: ['blacklist'] }],
};

/** Validates one IP or CIDR entry; returns the parsed parts or null. */
function parseCidr(spec: string): { ip: string; prefix: number | null; family: 'ipv4' | 'ipv6' } | null {
  const slash = spec.indexOf('/');
  const ip = slash < 0 ? spec : spec.slice(0, slash);
  const kind = isIP(ip);
  if (kind === 0) return null;
  const family = kind === 4 ? 'ipv4' : 'ipv6';
  if (slash < 0) return { ip, prefix: null, family };
  const text = spec.slice(slash + 1);
  if (!/^\d{1,3}$/.test(text)) return null;
  const prefix = Number(text);
  if (prefix > (kind === 4 ? 32 : 128)) return null;
  return { ip, prefix, family };
}

/** Builds a matcher for a list of IPs/CIDRs (config time). Throws on an invalid entry. */
export function buildIpList(list: readonly string[]): BlockList {
  const bl = new BlockList();
  for (const spec of list) {
    const p = parseCidr(spec);
    if (p === null) throw new Error(`invalid ip address: ${spec}`);
    if (p.prefix === null) bl.addAddress(p.ip, p.family);
    else bl.addSubnet(p.ip, p.prefix, p.family);
  }
  return bl;
}

// hot path
function listed(list: BlockList, addr: string): boolean {
  if (addr === '') return false;
  return list.check(addr, addr.includes(':') ? 'ipv6' : 'ipv4');
}

class IpRestriction implements PluginInstance {
  private readonly allow: BlockList | null;
  private readonly deny: BlockList | null;
  private readonly rejection: PluginResponse;

  constructor(conf: JsonObject) {
    this.allow = Array.isArray(conf.whitelist) ? buildIpList(conf.whitelist as string[]) : null;
    this.deny = Array.isArray(conf.blacklist) ? buildIpList(conf.blacklist as string[]) : null;
    const message = typeof conf.message === 'string' ? conf.message : 'Your IP address is not allowed';
    const status = typeof conf.response_code === 'number' ? conf.response_code : 403;
    this.rejection = { status, body: { message } };
  }

  // hot path
  private blocked(addr: string): boolean {
    if (this.allow !== null) return !listed(this.allow, addr);
    if (this.deny !== null) return listed(this.deny, addr);
    return false;
  }

  access(ctx: HttpContext): PluginResponse | undefined {
    return this.blocked(ctx.request.remoteAddr) ? this.rejection : undefined;
  }

  preread(ctx: StreamContext): PluginResponse | undefined {
    return this.blocked(ctx.remoteAddr) ? this.rejection : undefined;
  }
}

export const ipRestrictionPlugin: PluginDef = {
  name: 'ip-restriction',
  version: '0.1',
  priority: 3000,
  schema,
  subsystems: ['http', 'stream'],
  status: 'stable',
  check(conf) {
    for (const field of ['whitelist', 'blacklist']) {
      const list = conf[field];
      if (!Array.isArray(list)) continue;
      for (const spec of list) {
        if (typeof spec !== 'string' || parseCidr(spec) === null) return `invalid ip address: ${String(spec)}`;
      }
    }
    return null;
  },
  create(conf) {
    return new IpRestriction(conf);
  },
};

export default ipRestrictionPlugin;
