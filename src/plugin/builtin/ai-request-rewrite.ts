// ai-request-rewrite (APISIX priority 1073): access sends the client's body to an LLM with the configured prompt
// as the system message (the body as the user message, model options on top) and forwards the LLM's answer
// upstream in place of the body. The LLM call is a side call of its own: none of the client's headers or query
// go to the provider, only the conf's auth. Failures answer as APISIX: no body or one over max_req_body_size ->
// 400, anything the LLM does not answer with 200 and a chat completion -> 500 (status only, nginx error pages).
// A client that leaves while the LLM works cancels the LLM request (ctx.clientSignal).
import { request } from 'undici';
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { AiClient } from './ai/engine.ts';
import { resolveTarget, targetError, urlFor } from './ai/providers.ts';
import { authSchema, PROVIDERS, providerError } from './ai/schema.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    max_req_body_size: { type: 'integer', minimum: 1, default: 67108864 },
    prompt: { type: 'string' },
    provider: { type: 'string', enum: PROVIDERS },
    auth: authSchema,
    options: { type: 'object', properties: { model: { type: 'string' } }, additionalProperties: true },
    timeout: { type: 'integer', minimum: 1, maximum: 60000, default: 30000 },
    keepalive: { type: 'boolean', default: true },
    keepalive_timeout: { type: 'integer', minimum: 1000, default: 60000 },
    keepalive_pool: { type: 'integer', minimum: 1, default: 30 },
    ssl_verify: { type: 'boolean', default: true },
    override: { type: 'object', properties: { endpoint: { type: 'string' } } },
  },
  required: ['prompt', 'provider', 'auth'],
};

const BAD_REQUEST: PluginResponse = Object.freeze({ status: 400 });
const FAILED: PluginResponse = Object.freeze({ status: 500 });
/** nginx's status for a client that closed the connection (never sent: the client is gone). */
const CLIENT_GONE: PluginResponse = Object.freeze({ status: 499 });
const TIMED_OUT = new Error('timeout');

/** The chat completion's text (APISIX openai-chat extract_response_text): every choice's content, space-joined. */
function responseText(raw: string): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return null;
  }
  const choices = (parsed as { choices?: unknown } | null)?.choices;
  if (!Array.isArray(choices) || choices.length === 0) return null;
  const parts: string[] = [];
  for (const c of choices as { message?: { content?: unknown } }[]) {
    const content = c?.message?.content;
    if (typeof content === 'string') parts.push(content);
  }
  return parts.join(' ');
}

class AiRequestRewrite implements PluginInstance {
  readonly #url: string | null;
  readonly #headers: Record<string, string>;
  readonly #prompt: string;
  readonly #options: JsonObject | null;
  readonly #removeModel: boolean;
  readonly #maxBody: number;
  readonly #client: AiClient;
  readonly #logger: Logger;

  constructor(conf: JsonObject, logger: Logger) {
    const t = resolveTarget(`ai-request-rewrite-${String(conf.provider)}`, conf);
    this.#url = urlFor(t, 'openai-chat');
    this.#headers = { ...t.authHeaders, 'content-type': 'application/json' };
    this.#prompt = String(conf.prompt);
    this.#options = (conf.options as JsonObject | undefined) ?? null;
    this.#removeModel = t.def.removeModel === true;
    this.#maxBody = (conf.max_req_body_size as number | undefined) ?? 67108864;
    this.#client = new AiClient(conf);
    this.#logger = logger;
  }

  /** The LLM request (APISIX build_simple_request, then the model options as a flat overwrite). */
  #body(content: string): string {
    const body: JsonObject = {
      messages: [
        { role: 'system', content: this.#prompt },
        { role: 'user', content },
      ],
      stream: false,
    };
    const o = this.#options;
    if (o !== null) for (const k in o) body[k] = o[k]!;
    if (this.#removeModel) delete body.model;
    return JSON.stringify(body);
  }

  async access(ctx: HttpContext): Promise<PhaseResult> {
    const cl = Number(ctx.request.headers['content-length'] ?? 0);
    if (cl > this.#maxBody) {
      this.#logger.warn({ size: cl, max: this.#maxBody }, 'failed to get request body: request body too large');
      return BAD_REQUEST;
    }
    let raw: Buffer;
    try {
      raw = await ctx.request.readBody();
    } catch (err) {
      this.#logger.warn({ err: (err as Error).message }, 'failed to get request body');
      return BAD_REQUEST;
    }
    if (raw.length > this.#maxBody) {
      this.#logger.warn({ size: raw.length, max: this.#maxBody }, 'failed to get request body: request body too large');
      return BAD_REQUEST;
    }
    if (raw.length === 0) {
      this.#logger.warn('missing request body');
      return BAD_REQUEST;
    }
    if (this.#url === null) {
      this.#logger.error('provider has no openai-chat endpoint');
      return FAILED;
    }
    const gone = ctx.clientSignal;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(TIMED_OUT), this.#client.timeoutMs);
    let status: number;
    let text: string;
    try {
      const res = await request(this.#url, {
        method: 'POST',
        headers: this.#headers,
        body: this.#body(raw.toString('utf8')),
        dispatcher: this.#client.agent,
        signal: AbortSignal.any([ac.signal, gone]),
        reset: !this.#client.keepalive,
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      if (gone.aborted) return CLIENT_GONE;
      // The URL may carry auth query args: never logged.
      this.#logger.error({ err: err === TIMED_OUT ? 'timeout' : (err as Error).message }, 'failed to request LLM');
      return FAILED;
    } finally {
      clearTimeout(timer);
    }
    if (status !== 200) {
      this.#logger.error({ status }, `LLM service returned error status: ${status}`);
      return FAILED;
    }
    const content = responseText(text);
    if (content === null) {
      this.#logger.error('failed to extract text from LLM response');
      return FAILED;
    }
    ctx.request.setBody(content);
    return undefined;
  }

  destroy(): void {
    this.#client.close();
  }
}

export const aiRequestRewritePlugin: PluginDef = {
  name: 'ai-request-rewrite',
  version: '0.1',
  priority: 1073,
  schema,
  encryptFields: ['auth.header', 'auth.query'],
  subsystems: ['http'],
  status: 'experimental',
  check(conf, schemaType) {
    if (schemaType !== 'route') return null;
    if (conf.provider === 'openai-compatible' && typeof (conf.override as JsonObject | undefined)?.endpoint !== 'string') {
      return 'override.endpoint is required for openai-compatible provider';
    }
    return providerError(conf.provider) ?? targetError(conf);
  },
  create(conf, env) {
    return new AiRequestRewrite(conf, env.logger);
  },
};
