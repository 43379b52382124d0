// referer-restriction (APISIX priority 2990, access phase): allows (`whitelist`) or denies (`blacklist`)
// requests by the host of their Referer header. Entries are hosts (APISIX host_def); a leading `*` makes the
// rest a suffix (`*.xx.com` matches `a.xx.com`, not `xx.com`). A missing Referer, or one that is not an
// absolute http(s) or scheme-relative URL (lua-resty-http parse_uri), is rejected unless `bypass_missing`.
// Rejections are 403 {"message": message} (default "Your referer host is not allowed").
// Host comparison is exact (case-sensitive), as in APISIX.
import type { JsonObject } from '../../config/resources.ts';
import { hostDef } from '../../schema/defs.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    bypass_missing: { type: 'boolean', default: false },
    whitelist: { type: 'array', items: hostDef, minItems: 1 },
    blacklist: { type: 'array', items: hostDef, minItems: 1 },
    message: { type: 'string', minLength: 1, maxLength: 1024, default: 'Your referer host is not allowed' },
  },
  oneOf: [{ required: ['whitelist'] }, { required: ['blacklist'] }],
};

/**
 * The host part of a Referer as lua-resty-http's parse_uri reads it
 * (`^(?:(http[s]?):)?//((?:[^\[\]:/\?]+)|(?:\[.+\]))...`), or undefined when it does not parse.
 */
export function refererHost(referer: string): string | undefined {
  let i: number;
  if (referer.startsWith('http://')) i = 7;
  else if (referer.startsWith('https://')) i = 8;
  else if (referer.startsWith('//')) i = 2;
  else return undefined;
  if (referer.charCodeAt(i) === 0x5b /* [ */) {
    // `\[.+\]` is greedy and the rest of the pattern matches anything: up to the last `]`.
    const close = referer.lastIndexOf(']');
    return close > i + 1 ? referer.slice(i, close + 1) : undefined;
  }
  let j = i;
  while (j < referer.length) {
    const c = referer[j];
    if (c === '[' || c === ']' || c === ':' || c === '/' || c === '?') break;
    j++;
  }
  return j > i ? referer.slice(i, j) : undefined;
}

class HostMatcher {
  readonly #exact: ReadonlySet<string>;
  readonly #suffixes: readonly string[];

  constructor(hosts: readonly string[]) {
    const exact = new Set<string>();
    const suffixes: string[] = [];
    for (const h of hosts) {
      if (h.startsWith('*')) suffixes.push(h.slice(1));
      else exact.add(h);
    }
    this.#exact = exact;
    this.#suffixes = suffixes;
  }

  // hot path
  matches(host: string): boolean {
    if (this.#exact.has(host)) return true;
    for (let i = 0; i < this.#suffixes.length; i++) if (host.endsWith(this.#suffixes[i]!)) return true;
    return false;
  }
}

function hostsOf(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((h): h is string => typeof h === 'string') : undefined;
}

class RefererRestriction implements PluginInstance {
  readonly #allow: HostMatcher | undefined;
  readonly #deny: HostMatcher | undefined;
  readonly #bypassMissing: boolean;
  readonly #rejection: PluginResponse;

  constructor(conf: JsonObject) {
    const white = hostsOf(conf.whitelist);
    const black = hostsOf(conf.blacklist);
    this.#allow = white === undefined ? undefined : new HostMatcher(white);
    this.#deny = white === undefined && black !== undefined ? new HostMatcher(black) : undefined;
    this.#bypassMissing = conf.bypass_missing === true;
    this.#rejection = { status: 403, body: { message: String(conf.message ?? 'Your referer host is not allowed') } };
  }

  // hot path
  access(ctx: HttpContext): PluginResponse | undefined {
    const raw = ctx.request.headers.referer;
    const referer = Array.isArray(raw) ? raw[0] : raw;
    const host = referer === undefined ? undefined : refererHost(referer);
    let block: boolean;
    if (host === undefined) block = !this.#bypassMissing;
    else if (this.#allow !== undefined) block = !this.#allow.matches(host);
    else block = this.#deny?.matches(host) ?? false;
    return block ? this.#rejection : undefined;
  }
}

export const refererRestrictionPlugin: PluginDef = {
  name: 'referer-restriction',
  version: '0.1',
  priority: 2990,
  schema,
  subsystems: ['http'],
  status: 'stable',
  create(conf) {
    return new RefererRestriction(conf);
  },
};

export default refererRestrictionPlugin;
