// ua-restriction (APISIX priority 2999, access phase): allows (`allowlist`) or denies (`denylist`) requests by
// regular expressions on the User-Agent header, stripped of surrounding whitespace. A missing User-Agent is
// rejected unless `bypass_missing`. Rejections are 403 {"message": message} (default "Not allowed").
// The patterns are user-supplied and run on client input: they are compiled once with the linear-time engine
// (user-regex.ts) and refused at schema-check time if that engine cannot run them (no ReDoS).
// APISIX caches per-UA verdicts in an LRU; matching in linear time needs no cache, and a cache keyed by a
// client-chosen string would only be something to flood.
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { anyMatch, compileUserRegexes, type UserRegex } from '../user-regex.ts';

const patternList = { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } };

const schema: JsonObject = {
  type: 'object',
  properties: {
    bypass_missing: { type: 'boolean', default: false },
    allowlist: patternList,
    denylist: patternList,
    message: { type: 'string', minLength: 1, maxLength: 1024, default: 'Not allowed' },
  },
  oneOf: [{ required: ['allowlist'] }, { required: ['denylist'] }],
};

function listOf(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((p): p is string => typeof p === 'string') : undefined;
}

function compileList(v: unknown): UserRegex[] | string | undefined {
  const list = listOf(v);
  return list === undefined ? undefined : compileUserRegexes(list);
}

class UaRestriction implements PluginInstance {
  readonly #allow: readonly UserRegex[] | undefined;
  readonly #deny: readonly UserRegex[];
  readonly #bypassMissing: boolean;
  readonly #rejection: PluginResponse;

  constructor(conf: JsonObject) {
    const allow = compileList(conf.allowlist);
    const deny = compileList(conf.denylist);
    if (typeof allow === 'string') throw new Error(allow);
    if (typeof deny === 'string') throw new Error(deny);
    this.#allow = allow;
    this.#deny = deny ?? [];
    this.#bypassMissing = conf.bypass_missing === true;
    this.#rejection = { status: 403, body: { message: String(conf.message ?? 'Not allowed') } };
  }

  // hot path
  access(ctx: HttpContext): PluginResponse | undefined {
    const ua = ctx.request.headers['user-agent'];
    if (ua === undefined) return this.#bypassMissing ? undefined : this.#rejection;
    if (typeof ua === 'string') return this.#passes(ua.trim()) ? undefined : this.#rejection;
    // Several User-Agent headers: allowed when one is allowed; denied when one is denied.
    if (this.#allow !== undefined) {
      for (const v of ua) if (anyMatch(this.#allow, v.trim())) return undefined;
      return this.#rejection;
    }
    for (const v of ua) if (anyMatch(this.#deny, v.trim())) return this.#rejection;
    return undefined;
  }

  #passes(ua: string): boolean {
    return this.#allow !== undefined ? anyMatch(this.#allow, ua) : !anyMatch(this.#deny, ua);
  }
}

export const uaRestrictionPlugin: PluginDef = {
  name: 'ua-restriction',
  version: '0.1',
  priority: 2999,
  schema,
  subsystems: ['http'],
  status: 'stable',
  check(conf) {
    for (const key of ['allowlist', 'denylist']) {
      const r = compileList(conf[key]);
      if (typeof r === 'string') return r;
    }
    return null;
  },
  create(conf) {
    return new UaRestriction(conf);
  },
};

export default uaRestrictionPlugin;
