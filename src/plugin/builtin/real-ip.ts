// real-ip (APISIX priority 23000, rewrite phase): replaces the client address seen by later plugins, vars and
// loggers with one carried by the request (`source`: any variable, e.g. http_x_forwarded_for, arg_realip).
// - trusted_addresses: when set, only connections from these IPs/CIDRs may supply the address;
// - for http_x_forwarded_for the last address is taken; with `recursive` (and trusted_addresses) the header is
//   scanned right to left skipping trusted proxies, taking the first untrusted one (the leftmost if all are);
// - the value may carry a port (`1.2.3.4:80`, `[::1]:80`); a missing or invalid value changes nothing.
// What it sets (contract with the HTTP core and other plugins): ctx.vars `remote_addr` (and `remote_port` when
// a port is given); the connection's values stay in `realip_remote_addr` / `realip_remote_port` (nginx names).
// Consumers of the client address (ip-restriction, limit-*, chash, loggers, X-Forwarded-For towards the
// upstream) must read ctx.vars.get('remote_addr'), not ctx.request.remoteAddr.
import { isIP } from 'node:net';
import type { JsonObject } from '../../config/resources.ts';
import { IpMatcher } from '../../router/cidr.ts';
import type { Vars } from '../../router/vars.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance } from '../plugin.ts';
import { varToString } from '../template.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    source: { type: 'string', minLength: 1 },
    trusted_addresses: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
    recursive: { type: 'boolean', default: false },
  },
  required: ['source'],
};

/** `ip`, `ip:port`, `[ipv6]` or `[ipv6]:port`; null when not an IP address (or a bad port). */
export function parseAddress(text: string): { ip: string; port: number | undefined } | null {
  let ip = text.trim();
  let portText: string | undefined;
  if (ip.startsWith('[')) {
    const close = ip.indexOf(']');
    if (close < 0) return null;
    const rest = ip.slice(close + 1);
    ip = ip.slice(1, close);
    if (rest !== '') {
      if (!rest.startsWith(':')) return null;
      portText = rest.slice(1);
    }
  } else {
    const colon = ip.indexOf(':');
    if (colon >= 0 && colon === ip.lastIndexOf(':')) {
      portText = ip.slice(colon + 1);
      ip = ip.slice(0, colon);
    }
  }
  if (isIP(ip) === 0) return null;
  if (portText === undefined) return { ip, port: undefined };
  if (!/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  return port >= 1 && port <= 65535 ? { ip, port } : null;
}

/** The candidate address string chosen from an X-Forwarded-For value. */
export function pickForwardedFor(value: string, trusted: IpMatcher | null, recursive: boolean): string | undefined {
  const parts = value.split(',');
  if (!recursive || trusted === null) return parts[parts.length - 1].trim();
  for (let i = parts.length - 1; i >= 0; i--) {
    const candidate = parts[i].trim();
    const parsed = parseAddress(candidate);
    if (parsed === null || !trusted.match(parsed.ip)) return candidate;
  }
  return parts[0].trim();
}

export interface CompiledRealIp {
  readonly source: string;
  readonly trusted: IpMatcher | null;
  readonly recursive: boolean;
}

/** The replacement address for a request, or null to keep the connection's. */
export function resolveRealIp(
  c: CompiledRealIp,
  vars: Vars,
  remoteAddr: string,
): { ip: string; port: number | undefined } | null {
  if (c.trusted !== null && !c.trusted.match(remoteAddr)) return null;
  const value = varToString(vars.get(c.source));
  if (value === '') return null;
  const candidate = c.source === 'http_x_forwarded_for' ? pickForwardedFor(value, c.trusted, c.recursive) : value;
  return candidate === undefined ? null : parseAddress(candidate);
}

class RealIp implements PluginInstance {
  readonly #c: CompiledRealIp;
  constructor(c: CompiledRealIp) {
    this.#c = c;
  }

  rewrite(ctx: HttpContext): undefined {
    const vars = ctx.vars;
    const remote = varToString(vars.get('remote_addr')) || ctx.request.remoteAddr;
    const real = resolveRealIp(this.#c, vars, remote);
    if (real === null) return undefined;
    vars.set('realip_remote_addr', remote);
    vars.set('remote_addr', real.ip);
    if (real.port !== undefined) {
      vars.set('realip_remote_port', vars.get('remote_port') ?? ctx.request.remotePort);
      vars.set('remote_port', real.port);
    }
    return undefined;
  }
}

export const realIpPlugin: PluginDef = {
  name: 'real-ip',
  version: '0.1',
  priority: 23000,
  schema,
  subsystems: ['http'],
  status: 'stable',
  check(conf) {
    if (!Array.isArray(conf.trusted_addresses)) return null;
    for (const entry of conf.trusted_addresses) {
      const msg = IpMatcher.check(entry);
      if (msg !== null) return msg;
    }
    return null;
  },
  create(conf) {
    return new RealIp({
      source: String(conf.source),
      trusted: Array.isArray(conf.trusted_addresses) ? IpMatcher.compile(conf.trusted_addresses as string[]) : null,
      recursive: conf.recursive === true,
    });
  },
};

export default realIpPlugin;
