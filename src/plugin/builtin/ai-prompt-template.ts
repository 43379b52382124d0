// ai-prompt-template (APISIX priority 1071, rewrite): the client names a configured template
// (`template_name`) and sends its variables as body fields; the template (model + messages) is rendered with
// `{{ field }}` (dotted paths allowed) replaced by the body's values and becomes the request body. Templates
// are parsed into literal/variable parts at create().
import type { JsonObject } from '../../config/resources.ts';
import { ownGet } from '../../config/safe-json.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance } from '../plugin.ts';
import { jsonBody, promptSchema } from './ai/prompt-body.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    max_req_body_size: { type: 'integer', minimum: 1, default: 67108864 },
    templates: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        properties: {
          name: { type: 'string', minLength: 1 },
          template: {
            type: 'object',
            properties: { model: { type: 'string', minLength: 1 }, messages: { type: 'array', minItems: 1, items: promptSchema } },
          },
        },
        required: ['name', 'template'],
      },
    },
  },
  required: ['templates'],
};

const VAR = /\{\{\s*([A-Za-z0-9_.]+)\s*\}\}/g;

/** A template's JSON text split at its `{{ var }}` places (odd indexes are variable paths). */
type Compiled = readonly string[];

/** The body's value at a dotted path: own properties only (`{{constructor}}` is a field, not Object). */
function lookup(body: JsonObject, path: string): unknown {
  let cur: unknown = body;
  for (const seg of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = ownGet(cur as Record<string, unknown>, seg);
  }
  return cur;
}

class Template implements PluginInstance {
  readonly #templates = new Map<string, Compiled>();
  readonly #max: number;

  constructor(conf: JsonObject) {
    for (const t of conf.templates as JsonObject[]) {
      if (this.#templates.has(String(t.name))) continue;
      this.#templates.set(String(t.name), JSON.stringify(t.template).split(VAR));
    }
    this.#max = (conf.max_req_body_size as number | undefined) ?? 67108864;
  }

  async rewrite(ctx: HttpContext): Promise<PhaseResult> {
    const parsed = await jsonBody(ctx, this.#max);
    if (!parsed.ok) return parsed.response;
    const name = parsed.body.template_name;
    if (name === undefined || name === null) return { status: 400, body: { message: 'template name is missing in request.' } };
    const parts = this.#templates.get(String(name));
    if (parts === undefined) return { status: 400, body: { message: `template: ${String(name)} not configured.` } };
    let out = '';
    for (let i = 0; i < parts.length; i++) {
      if (i % 2 === 0) {
        out += parts[i];
        continue;
      }
      const v = lookup(parsed.body, parts[i]!);
      if (v === undefined || v === null) continue;
      // The place is inside a JSON string of the template: the value is escaped as string content.
      out += JSON.stringify(typeof v === 'string' ? v : JSON.stringify(v)).slice(1, -1);
    }
    ctx.request.setBody(out);
    return undefined;
  }
}

export const aiPromptTemplatePlugin: PluginDef = {
  name: 'ai-prompt-template',
  version: '0.1',
  priority: 1071,
  schema,
  subsystems: ['http'],
  status: 'experimental',
  create: (conf) => new Template(conf),
};
