// ai-prompt-decorator (APISIX priority 1070, rewrite): prepends and appends configured messages to the chat
// request's `messages`, then hands the rewritten body on (ai-proxy reads it).
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance } from '../plugin.ts';
import { jsonBody, promptSchema } from './ai/prompt-body.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    max_req_body_size: { type: 'integer', minimum: 1, default: 67108864 },
    prepend: { type: 'array', items: promptSchema },
    append: { type: 'array', items: promptSchema },
  },
  anyOf: [{ required: ['prepend'] }, { required: ['append'] }, { required: ['append', 'prepend'] }],
};

class Decorator implements PluginInstance {
  readonly #prepend: readonly JsonObject[];
  readonly #append: readonly JsonObject[];
  readonly #max: number;

  constructor(conf: JsonObject) {
    this.#prepend = (conf.prepend ?? []) as JsonObject[];
    this.#append = (conf.append ?? []) as JsonObject[];
    this.#max = (conf.max_req_body_size as number | undefined) ?? 67108864;
  }

  async rewrite(ctx: HttpContext): Promise<PhaseResult> {
    const parsed = await jsonBody(ctx, this.#max);
    if (!parsed.ok) return parsed.response;
    const body = parsed.body;
    const messages = Array.isArray(body.messages) ? (body.messages as JsonObject[]) : [];
    body.messages = [...this.#prepend, ...messages, ...this.#append];
    ctx.request.setBody(JSON.stringify(body));
    return undefined;
  }
}

export const aiPromptDecoratorPlugin: PluginDef = {
  name: 'ai-prompt-decorator',
  version: '0.1',
  priority: 1070,
  schema,
  subsystems: ['http'],
  status: 'experimental',
  create: (conf) => new Decorator(conf),
};
