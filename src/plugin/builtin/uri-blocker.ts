// uri-blocker (APISIX priority 2900, rewrite phase): rejects requests whose `request_uri` (decoded, normalized
// path and query string) matches any of `block_rules`. The answer is `rejected_code` (default 403) with
// {"error_msg": rejected_msg}, or with no body (nginx's HTML error page) when `rejected_msg` is unset.
// APISIX joins the rules with `|` into one PCRE; here they are joined the same way into one pattern run by
// the linear-time engine (user-regex.ts), so a rule cannot be turned into a ReDoS. Each rule is also checked
// on its own at schema time so an error names the offending rule.
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { compileUserRegex, compileUserRegexes, type UserRegex } from '../user-regex.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    block_rules: {
      type: 'array',
      items: { type: 'string', minLength: 1, maxLength: 4096 },
      uniqueItems: true,
    },
    rejected_code: { type: 'integer', minimum: 200, default: 403 },
    rejected_msg: { type: 'string', minLength: 1 },
    case_insensitive: { type: 'boolean', default: false },
  },
  required: ['block_rules'],
};

function rulesOf(conf: JsonObject): string[] {
  return Array.isArray(conf.block_rules) ? conf.block_rules.filter((r): r is string => typeof r === 'string') : [];
}

class UriBlocker implements PluginInstance {
  readonly #rule: UserRegex;
  readonly #rejection: PluginResponse;

  constructor(conf: JsonObject) {
    const rules = rulesOf(conf);
    const ci = conf.case_insensitive === true;
    // An empty list joins to the empty pattern, which matches every URI (as in APISIX).
    const combined = compileUserRegex(rules.join('|'), ci);
    if (typeof combined === 'string') throw new Error(combined);
    this.#rule = combined;
    const status = typeof conf.rejected_code === 'number' ? conf.rejected_code : 403;
    this.#rejection =
      typeof conf.rejected_msg === 'string' ? { status, body: { error_msg: conf.rejected_msg } } : { status };
  }

  // hot path
  rewrite(ctx: HttpContext): PluginResponse | undefined {
    // APISIX's request_uri at this point: the decoded, normalized path plus the raw query string. Matching
    // the client's encoding instead would let `/root%2eexe` slip past a `root.exe` rule.
    const path = ctx.vars.get('uri');
    if (typeof path !== 'string') return undefined;
    const query = ctx.request.query;
    return this.#rule.test(query === '' ? path : `${path}?${query}`) ? this.#rejection : undefined;
  }
}

export const uriBlockerPlugin: PluginDef = {
  name: 'uri-blocker',
  version: '0.1',
  priority: 2900,
  schema,
  subsystems: ['http'],
  status: 'stable',
  check(conf) {
    const r = compileUserRegexes(rulesOf(conf), conf.case_insensitive === true);
    return typeof r === 'string' ? r : null;
  },
  create(conf) {
    return new UriBlocker(conf);
  },
};

export default uriBlockerPlugin;
