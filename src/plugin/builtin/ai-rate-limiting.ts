// ai-rate-limiting (APISIX priority 1030): token budgets for LLM requests proxied by ai-proxy / ai-proxy-multi.
// access (after the AI plugin picked an instance) rejects with rejected_code (503) / {"error_msg": rejected_msg}
// when the budget of the window is spent (a dry run: nothing is charged); log charges the tokens the response
// used (limit_strategy: total_tokens, prompt_tokens or completion_tokens of the provider's usage, JSON or the
// streamed usage chunk; or expression: `cost_expr` over the raw usage fields, ai/cost-expr.ts). Budgets: `limit`/`time_window` shared by the route's instances (counter key
// "ai-rate-limiting#global"), per-instance `instances[]`, or `rules[]` keyed by variables (e.g. $consumer_name).
// Headers X-AI-RateLimit-{Limit,Remaining,Reset}-<instance> (rules: X-AI-<prefix>-RateLimit-*). Policies: local
// (node-wide: the cluster primary counts for every worker, counters/cluster.ts) and redis / redis-cluster /
// redis-sentinel (shared by gateways), both through the counter stores' cost increment (incrBy).
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import { nodeCounters } from '../counters/cluster.ts';
import type { CostCounterStore } from '../counters/counter.ts';
import { RedisCounterStore } from '../counters/redis.ts';
import { redisTargetOf } from '../counters/redis-client.ts';
import { policySchema, redisCluster, redisSentinel, redisSingle } from '../counters/redis-schema.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { compileCostExpr, type CostExpr } from './ai/cost-expr.ts';
import { GATE_KEY, type InstanceGate } from './ai/gate.ts';
import { aiState, type AiState, type TokenUsage } from './ai/state.ts';
import { DynamicNumber, VarTemplate } from './limit-count/key.ts';
import { counterScope } from './limit-count/limiter.ts';

const countOrVar: JsonObject = { oneOf: [{ type: 'integer', exclusiveMinimum: 0 }, { type: 'string' }] };

const schema: JsonObject = {
  type: 'object',
  properties: {
    limit: countOrVar,
    time_window: countOrVar,
    show_limit_quota_header: { type: 'boolean', default: true },
    limit_strategy: { type: 'string', enum: ['total_tokens', 'prompt_tokens', 'completion_tokens', 'expression'], default: 'total_tokens' },
    cost_expr: { type: 'string', minLength: 1 },
    instances: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          limit: { oneOf: [{ type: 'integer', minimum: 1 }, { type: 'string' }] },
          time_window: { oneOf: [{ type: 'integer', minimum: 1 }, { type: 'string' }] },
        },
        required: ['name', 'limit', 'time_window'],
      },
    },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
    rejected_msg: { type: 'string', minLength: 1 },
    policy: { type: 'string', enum: ['local', 'redis', 'redis-cluster', 'redis-sentinel'], default: 'local' },
    allow_degradation: { type: 'boolean', default: false },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        properties: { count: countOrVar, time_window: countOrVar, key: { type: 'string' }, header_prefix: { type: 'string' } },
        required: ['count', 'time_window', 'key'],
      },
    },
  },
  dependencies: { limit: ['time_window'], time_window: ['limit'] },
  oneOf: [{ anyOf: [{ required: ['limit', 'time_window'] }, { required: ['instances'] }] }, { required: ['rules'] }],
  ...policySchema(redisSingle, redisCluster, redisSentinel),
};

interface Budget {
  readonly limit: DynamicNumber;
  readonly window: DynamicNumber;
  /** Constant key, or a template (rules). */
  readonly key: string | VarTemplate;
  readonly headers: { readonly limit: string; readonly remaining: string; readonly reset: string };
}

function headersFor(name: string): Budget['headers'] {
  return { limit: `X-AI-RateLimit-Limit-${name}`, remaining: `X-AI-RateLimit-Remaining-${name}`, reset: `X-AI-RateLimit-Reset-${name}` };
}

/** Seconds to the window's end, two decimals (APISIX). */
function resetText(ms: number): string {
  return String(Math.floor(Math.max(0, ms) / 10) / 100);
}

const FAILED: PluginResponse = Object.freeze({ status: 500, body: Object.freeze({ error_msg: 'failed to limit count' }) });

class AiRateLimiting implements PluginInstance, InstanceGate {
  readonly #rules: Budget[] | null;
  readonly #perInstance = new Map<string, Budget>();
  readonly #global: { limit: DynamicNumber; window: DynamicNumber } | null;
  readonly #store: CostCounterStore;
  readonly #redis: RedisCounterStore | null;
  readonly #prefix: string;
  readonly #strategy: keyof TokenUsage;
  /** limit_strategy expression: the compiled cost_expr (null for the token-field strategies). */
  readonly #cost: CostExpr | null;
  readonly #showHeaders: boolean;
  readonly #degrade: boolean;
  readonly #rejection: PluginResponse;
  readonly #logger: Logger;

  constructor(conf: JsonObject, scopeKey: string, logger: Logger) {
    const target = redisTargetOf(conf);
    this.#redis = target === null ? null : new RedisCounterStore(target);
    this.#store = this.#redis ?? nodeCounters;
    const scope = counterScope(conf, scopeKey);
    this.#prefix = target === null ? `ai-rate-limiting:${scope}:` : `plugin-ai-rate-limiting:v1:${scope}:`;
    if (Array.isArray(conf.rules) && conf.rules.length > 0) {
      this.#rules = (conf.rules as JsonObject[]).map((r, i) => {
        const p = r.header_prefix === undefined ? String(i + 1) : String(r.header_prefix);
        return {
          limit: new DynamicNumber(r.count as number | string),
          window: new DynamicNumber(r.time_window as number | string),
          key: new VarTemplate(`${i}:${String(r.key)}`),
          headers: { limit: `X-AI-${p}-RateLimit-Limit`, remaining: `X-AI-${p}-RateLimit-Remaining`, reset: `X-AI-${p}-RateLimit-Reset` },
        };
      });
    } else {
      this.#rules = null;
    }
    for (const ins of (conf.instances ?? []) as JsonObject[]) {
      const name = String(ins.name);
      this.#perInstance.set(name, {
        limit: new DynamicNumber(ins.limit as number | string),
        window: new DynamicNumber(ins.time_window as number | string),
        key: name,
        headers: headersFor(name),
      });
    }
    this.#global =
      conf.limit === undefined ? null : { limit: new DynamicNumber(conf.limit as number | string), window: new DynamicNumber(conf.time_window as number | string) };
    this.#strategy = ((conf.limit_strategy as string | undefined) ?? 'total_tokens') as keyof TokenUsage;
    this.#cost = conf.limit_strategy === 'expression' ? compileCostExpr(String(conf.cost_expr)) : null;
    this.#showHeaders = conf.show_limit_quota_header !== false;
    this.#degrade = conf.allow_degradation === true;
    const status = (conf.rejected_code as number | undefined) ?? 503;
    this.#rejection = typeof conf.rejected_msg === 'string' ? { status, body: { error_msg: conf.rejected_msg } } : { status };
    this.#logger = logger;
  }

  /** The budgets of one instance (APISIX transform_limit_conf). */
  #budgets(instance: string): Budget[] {
    if (this.#rules !== null) return this.#rules;
    const own = this.#perInstance.get(instance);
    if (own !== undefined) return [own];
    if (this.#global === null) return [];
    return [{ ...this.#global, key: 'ai-rate-limiting#global', headers: headersFor(instance) }];
  }

  rewrite(ctx: HttpContext): void {
    ctx.pluginData.set(GATE_KEY, this);
  }

  async access(ctx: HttpContext): Promise<PhaseResult> {
    const st = aiState(ctx);
    if (st === undefined || st.instance === null) return undefined;
    const r = await this.#check(ctx, st.instance, true);
    if (r !== undefined) st.rateLimited = true;
    return r;
  }

  async available(ctx: HttpContext, instance: string): Promise<boolean> {
    return (await this.#check(ctx, instance, false)) === undefined;
  }

  /** Dry run of every budget: a rejection when one is spent. */
  async #check(ctx: HttpContext, instance: string, headers: boolean): Promise<PluginResponse | undefined> {
    for (const b of this.#budgets(instance)) {
      const limit = b.limit.resolve(ctx.vars);
      const window = b.window.resolve(ctx.vars);
      if (typeof limit !== 'number' || typeof window !== 'number') {
        this.#logger.error({ limit, window }, 'failed to get rate limit rules');
        return this.#degrade ? undefined : FAILED;
      }
      const key = this.#key(ctx, b);
      if (key === null) continue;
      let w;
      try {
        // A dry run (cost 0) that also starts the window, as resty.limit.count's does.
        w = await this.#store.incrBy(key, window * 1000, 0);
      } catch (err) {
        this.#logger.error({ err }, 'failed to limit count');
        return this.#degrade ? undefined : FAILED;
      }
      const remaining = limit - w.count;
      const spent = remaining - 1 < 0;
      if (headers && this.#showHeaders) {
        ctx.response.setHeader(b.headers.limit, String(limit));
        ctx.response.setHeader(b.headers.remaining, String(spent ? 0 : remaining));
        ctx.response.setHeader(b.headers.reset, resetText(w.resetMs));
      }
      if (spent) return this.#rejection;
    }
    return undefined;
  }

  #key(ctx: HttpContext, b: Budget): string | null {
    if (typeof b.key === 'string') return this.#prefix + b.key;
    const k = b.key.render(ctx.vars);
    // A rule keyed on variables this request lacks does not apply (limit-count's rules behave alike).
    if (b.key.resolved === 0 && b.key.constant === null) return null;
    return this.#prefix + k;
  }

  log(ctx: HttpContext): void {
    const st = aiState(ctx);
    if (st === undefined || st.instance === null || st.rateLimited) return;
    const used = this.#used(st);
    if (used === undefined) {
      this.#logger.error('failed to get token usage for llm service');
      return;
    }
    if (used === 0) return;
    for (const b of this.#budgets(st.instance)) {
      const window = b.window.resolve(ctx.vars);
      const key = this.#key(ctx, b);
      if (typeof window !== 'number' || key === null) continue;
      try {
        // Charged even past the limit: the tokens were spent anyway.
        const r = this.#store.incrBy(key, window * 1000, used);
        if (r instanceof Promise) r.catch((err: unknown) => this.#logger.error({ err }, 'failed to charge tokens'));
      } catch (err) {
        this.#logger.error({ err }, 'failed to charge tokens');
      }
    }
  }

  /** The tokens to charge: a usage field, or cost_expr over the raw usage (undefined: nothing to charge). */
  #used(st: AiState): number | undefined {
    if (this.#cost === null) return st.usage?.[this.#strategy];
    if (st.rawUsage === null) return undefined;
    const r = this.#cost.evaluate(st.rawUsage);
    if (typeof r === 'string') {
      this.#logger.error({ error: r }, 'failed to evaluate cost_expr');
      return undefined;
    }
    return r;
  }

  destroy(): void {
    this.#redis?.release();
  }
}

export const aiRateLimitingPlugin: PluginDef = {
  name: 'ai-rate-limiting',
  version: '0.1',
  priority: 1030,
  schema,
  encryptFields: ['redis_password', 'sentinel_password'],
  subsystems: ['http'],
  status: 'experimental',
  check(conf, schemaType) {
    if (schemaType !== 'route') return null;
    if (conf.limit_strategy === 'expression') {
      if (typeof conf.cost_expr !== 'string' || conf.cost_expr === '') return "cost_expr is required when limit_strategy is 'expression'";
      try {
        compileCostExpr(conf.cost_expr);
      } catch (err) {
        return `invalid cost_expr: ${(err as Error).message}`;
      }
    }
    return null;
  },
  create(conf, env) {
    return new AiRateLimiting(conf, env.scopeKey, env.logger);
  },
};
