// ai-prompt-guard (APISIX priority 1072, access): checks the chat request's user content (the last message, or
// the whole history with match_all_conversation_history; every role with match_all_roles) against allow and
// deny patterns, compiled at create() as ReDoS-safe user regexes. 400 {"message": ...} as APISIX.
import type { JsonObject } from '../../config/resources.ts';
import { anyMatch, compileUserRegexes, type UserRegex } from '../user-regex.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { jsonBody } from './ai/prompt-body.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    max_req_body_size: { type: 'integer', minimum: 1, default: 67108864 },
    match_all_roles: { type: 'boolean', default: false },
    match_all_conversation_history: { type: 'boolean', default: false },
    allow_patterns: { type: 'array', items: { type: 'string' }, default: [] },
    deny_patterns: { type: 'array', items: { type: 'string' }, default: [] },
    fail_mode: { type: 'string', enum: ['skip', 'reject'], default: 'skip' },
  },
};

const NOT_ALLOWED: PluginResponse = { status: 400, body: { message: "Request doesn't match allow patterns" } };
const DENIED: PluginResponse = { status: 400, body: { message: 'Request contains prohibited content' } };
const UNRECOGNIZED: PluginResponse = { status: 400, body: { message: 'Request format not recognized by ai-prompt-guard' } };
const NOTHING: PluginResponse = { status: 200, body: '' };

class Guard implements PluginInstance {
  readonly #allow: UserRegex[];
  readonly #deny: UserRegex[];
  readonly #allRoles: boolean;
  readonly #history: boolean;
  readonly #reject: boolean;
  readonly #max: number;

  constructor(conf: JsonObject) {
    this.#allow = compileUserRegexes((conf.allow_patterns ?? []) as string[]) as UserRegex[];
    this.#deny = compileUserRegexes((conf.deny_patterns ?? []) as string[]) as UserRegex[];
    this.#allRoles = conf.match_all_roles === true;
    this.#history = conf.match_all_conversation_history === true;
    this.#reject = conf.fail_mode === 'reject';
    this.#max = (conf.max_req_body_size as number | undefined) ?? 67108864;
  }

  async access(ctx: HttpContext): Promise<PhaseResult> {
    const parsed = await jsonBody(ctx, this.#max);
    if (!parsed.ok) return this.#reject ? parsed.response : undefined;
    const all = parsed.body.messages;
    if (!Array.isArray(all)) return this.#reject ? UNRECOGNIZED : undefined;
    let messages = (this.#history ? all : all.slice(-1)) as JsonObject[];
    if (!this.#allRoles) messages = messages.filter((m) => m?.role === 'user');
    // APISIX ends the request with an empty 200 when nothing is left to check.
    if (messages.length === 0) return NOTHING;
    const content = messages
      .map((m) => m.content)
      .filter((c) => c !== undefined && c !== null)
      .map((c) => (typeof c === 'string' ? c : JSON.stringify(c)))
      .join(' ');
    if (this.#allow.length > 0 && !anyMatch(this.#allow, content)) return NOT_ALLOWED;
    if (anyMatch(this.#deny, content)) return DENIED;
    return undefined;
  }
}

export const aiPromptGuardPlugin: PluginDef = {
  name: 'ai-prompt-guard',
  version: '0.1',
  priority: 1072,
  schema,
  subsystems: ['http'],
  status: 'experimental',
  check(conf, schemaType) {
    if (schemaType !== 'route') return null;
    for (const [field, label] of [['allow_patterns', 'allow_pattern'], ['deny_patterns', 'deny_pattern']] as const) {
      for (const p of (conf[field] ?? []) as string[]) {
        if (typeof compileUserRegexes([p]) === 'string') return `invalid ${label}: ${p}`;
      }
    }
    return null;
  },
  create: (conf) => new Guard(conf),
};
