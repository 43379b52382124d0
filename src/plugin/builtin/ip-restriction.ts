// ip-restriction (APISIX priority 3000): allow (whitelist) or deny (blacklist) clients by IP/CIDR.
// HTTP: access phase answers `response_code` with {"message": ...}. Stream: preread closes the session.
// Matching is the project's one CIDR matcher (router/cidr.ts), shared with route `remote_addrs` and `ipmatch`:
// an IPv4-mapped client (`::ffff:a.b.c.d`, what a dual-stack listener reports) matches IPv4 entries.
import type { JsonObject } from '../../config/resources.ts';
import { IpMatcher } from '../../router/cidr.ts';
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

class IpRestriction implements PluginInstance {
  private readonly allow: IpMatcher | null;
  private readonly deny: IpMatcher | null;
  private readonly rejection: PluginResponse;

  constructor(conf: JsonObject) {
    this.allow = Array.isArray(conf.whitelist) ? IpMatcher.compile(conf.whitelist as string[]) : null;
    this.deny = Array.isArray(conf.blacklist) ? IpMatcher.compile(conf.blacklist as string[]) : null;
    const message = typeof conf.message === 'string' ? conf.message : 'Your IP address is not allowed';
    const status = typeof conf.response_code === 'number' ? conf.response_code : 403;
    this.rejection = { status, body: { message } };
  }

  // hot path: an unparsable or empty address is never listed, so a whitelist rejects it and a blacklist passes it
  private blocked(addr: string): boolean {
    if (this.allow !== null) return !this.allow.match(addr);
    if (this.deny !== null) return this.deny.match(addr);
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
        const err = IpMatcher.check(spec);
        if (err !== null) return err;
      }
    }
    return null;
  },
  create(conf) {
    return new IpRestriction(conf);
  },
};

export default ipRestrictionPlugin;
