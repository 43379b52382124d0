// ai-proxy (APISIX priority 1040): proxies OpenAI-style chat completions and embeddings to one LLM provider.
// access reads and classifies the JSON body (413/400 as APISIX) and names the instance "ai-proxy-<provider>";
// before_proxy sends it with the configured auth and options and relays the answer (APISIX's
// bypass_nginx_upstream: the route's upstream is never used, and routes need none). Running in before_proxy
// rather than access lets every access step (ai-rate-limiting, limit-count, prompt plugins) run first.
// Streams are relayed chunk by chunk; a client that leaves (before the provider answers or mid-stream) aborts
// the provider request (ctx.clientSignal).
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance } from '../plugin.ts';
import { AiClient, callInstance } from './ai/engine.ts';
import { resolveTarget, targetError, type Target } from './ai/providers.ts';
import { aiProxyEncryptFields, aiProxySchema, providerError } from './ai/schema.ts';
import { aiLoggingOf, aiState, detectRequest, isState, type AiLogging } from './ai/state.ts';

class AiProxy implements PluginInstance {
  readonly #target: Target;
  readonly #client: AiClient;
  readonly #override: JsonObject | null;
  readonly #maxBody: number;
  readonly #logging: AiLogging | null;
  readonly #logger: Logger;

  constructor(conf: JsonObject, logger: Logger) {
    this.#target = resolveTarget(`ai-proxy-${String(conf.provider)}`, conf);
    this.#client = new AiClient(conf);
    this.#override = (conf.override as JsonObject | undefined) ?? null;
    this.#maxBody = (conf.max_req_body_size as number | undefined) ?? 67108864;
    this.#logging = aiLoggingOf(conf);
    this.#logger = logger;
  }

  async access(ctx: HttpContext): Promise<PhaseResult> {
    const st = await detectRequest(ctx, this.#maxBody);
    if (!isState(st)) return st;
    st.logging = this.#logging;
    st.instance = this.#target.name;
    ctx.vars.set('picked_ai_instance_name', st.instance);
    return undefined;
  }

  async before_proxy(ctx: HttpContext): Promise<PhaseResult> {
    const st = aiState(ctx);
    if (st === undefined) return undefined;
    const attempt = await callInstance(ctx, st, this.#target, this.#client, this.#override, null, this.#logger);
    return attempt.response;
  }

  destroy(): void {
    this.#client.close();
  }
}

export const aiProxyPlugin: PluginDef = {
  name: 'ai-proxy',
  version: '0.5',
  priority: 1040,
  schema: aiProxySchema,
  encryptFields: aiProxyEncryptFields,
  subsystems: ['http'],
  status: 'experimental',
  check(conf, schemaType) {
    if (schemaType !== 'route') return null;
    return providerError(conf.provider) ?? targetError(conf);
  },
  create(conf, env) {
    return new AiProxy(conf, env.logger);
  },
};
