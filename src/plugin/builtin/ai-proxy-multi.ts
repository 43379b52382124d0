// ai-proxy-multi (APISIX priority 1041): several provider instances balanced by weight within priority groups
// (the core roundrobin/chash balancers and the priority wrapper of src/upstream, instance names as endpoint
// keys). access picks an instance (skipping instances whose ai-rate-limiting budget is spent when
// fallback_strategy says so; 503 "all servers tried" when none is left); before_proxy sends the request and, on
// a 429 / 5xx / timeout / fallback_http_statuses answer that fallback_strategy covers, moves to the next
// untried instance, bounded by max_retries and retry_on_failure_within_ms. When no instance is left the client
// gets 502 with the last provider error body (APISIX). Instances with checks.active are probed (ai/health.ts)
// and skipped by the balancer while unhealthy.
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import { ALL_HEALTHY, type Balancer, type Endpoint } from '../../upstream/balancer.ts';
import { chashFactory } from '../../upstream/balancer-chash.ts';
import { PriorityBalancer } from '../../upstream/balancer-priority.ts';
import { roundRobinFactory } from '../../upstream/balancer-roundrobin.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { AiClient, callInstance } from './ai/engine.ts';
import { gateOf } from './ai/gate.ts';
import { InstanceHealth } from './ai/health.ts';
import { resolveTarget, targetError, type Target } from './ai/providers.ts';
import { aiProxyMultiSchema, providerError } from './ai/schema.ts';
import { aiLoggingOf, aiState, detectRequest, isState, type AiLogging, type AiState } from './ai/state.ts';

interface Instance {
  readonly target: Target;
  readonly override: JsonObject | null;
}

const TRIED = 'ai-proxy-multi:tried';

function strategyHas(s: unknown, name: string): boolean {
  return s === name || (Array.isArray(s) && s.includes(name));
}

class AiProxyMulti implements PluginInstance {
  readonly #instances = new Map<string, Instance>();
  readonly #balancer: Balancer;
  readonly #health: InstanceHealth;
  #probing = false;
  readonly #client: AiClient;
  readonly #maxBody: number;
  readonly #on429: boolean;
  readonly #on5xx: boolean;
  readonly #checkLimits: boolean;
  readonly #statuses: ReadonlySet<number> | null;
  readonly #maxRetries: number | null;
  readonly #within: number | null;
  readonly #logging: AiLogging | null;
  readonly #logger: Logger;

  constructor(conf: JsonObject, scope: string, logger: Logger) {
    const endpoints: Endpoint[] = [];
    const origins = new Map<string, string | null>();
    for (const ins of conf.instances as JsonObject[]) {
      const name = String(ins.name);
      const target = resolveTarget(name, ins);
      this.#instances.set(name, { target, override: (ins.override as JsonObject | undefined) ?? null });
      origins.set(name, target.origin);
      endpoints.push({ key: name, host: name, port: 0, domain: name, weight: Number(ins.weight), priority: Number(ins.priority ?? 0) });
    }
    this.#health = new InstanceHealth(scope, conf.instances as JsonObject[], origins, logger);
    const health = this.#health.size > 0 ? this.#health : ALL_HEALTHY;
    const bal = (conf.balancer ?? {}) as JsonObject;
    const factory = bal.algorithm === 'chash' ? chashFactory : roundRobinFactory;
    const bconf: JsonObject = { type: factory.type, hash_on: bal.hash_on ?? 'vars', key: bal.key ?? 'remote_addr' };
    const multi = endpoints.some((e) => e.priority !== endpoints[0]!.priority);
    this.#balancer = multi ? new PriorityBalancer(factory, endpoints, bconf, health) : factory.create(endpoints, bconf, health);
    this.#client = new AiClient(conf);
    this.#maxBody = (conf.max_req_body_size as number | undefined) ?? 67108864;
    const s = conf.fallback_strategy;
    this.#on429 = strategyHas(s, 'http_429');
    this.#on5xx = strategyHas(s, 'http_5xx');
    this.#checkLimits = strategyHas(s, 'instance_health_and_rate_limiting') || strategyHas(s, 'rate_limiting');
    this.#statuses = Array.isArray(conf.fallback_http_statuses) ? new Set(conf.fallback_http_statuses as number[]) : null;
    this.#maxRetries = (conf.max_retries as number | undefined) ?? null;
    this.#within = (conf.retry_on_failure_within_ms as number | undefined) ?? null;
    this.#logging = aiLoggingOf(conf);
    this.#logger = logger;
  }

  /** The next usable instance name, or null when every one is tried or out of budget. */
  async #pick(ctx: HttpContext, tried: Set<string>): Promise<string | null> {
    for (let i = 0; i < this.#instances.size; i++) {
      const r = this.#balancer.pick({ vars: ctx.vars, tried });
      if (!r.ok) return null;
      const name = r.endpoint.key;
      const gate = this.#checkLimits ? gateOf(ctx) : undefined;
      if (gate === undefined || (await gate.available(ctx, name))) return name;
      this.#logger.warn({ instance: name }, 'ai instance is not available, try to pick another one');
      tried.add(name);
    }
    return null;
  }

  #use(ctx: HttpContext, st: AiState, name: string): void {
    st.instance = name;
    ctx.vars.set('picked_ai_instance_name', name);
  }

  async access(ctx: HttpContext): Promise<PhaseResult> {
    const st = await detectRequest(ctx, this.#maxBody);
    if (!isState(st)) return st;
    st.logging = this.#logging;
    if (!this.#probing) {
      this.#probing = true;
      this.#health.start();
    }
    const tried = new Set<string>();
    ctx.pluginData.set(TRIED, tried);
    const name = this.#instances.size === 1 ? this.#instances.keys().next().value! : await this.#pick(ctx, tried);
    if (name === null) return { status: 503, body: 'all servers tried' };
    this.#use(ctx, st, name);
    return undefined;
  }

  #falls(status: number): boolean {
    return (status === 429 && this.#on429) || (status >= 500 && this.#on5xx) || (this.#statuses?.has(status) ?? false);
  }

  async before_proxy(ctx: HttpContext): Promise<PhaseResult> {
    const st = aiState(ctx);
    if (st === undefined || st.instance === null) return undefined;
    const tried = (ctx.pluginData.get(TRIED) as Set<string> | undefined) ?? new Set<string>();
    let retries = 0;
    for (;;) {
      const ins = this.#instances.get(st.instance)!;
      const attempt = await callInstance(ctx, st, ins.target, this.#client, ins.override, this.#statuses, this.#logger);
      if (attempt.ok || !this.#falls(attempt.status)) return attempt.response;
      if (this.#within !== null && attempt.elapsedMs > this.#within) return attempt.response;
      retries++;
      if (this.#maxRetries !== null && retries > this.#maxRetries) return attempt.response;
      const failed = st.instance;
      tried.add(failed);
      const next = await this.#pick(ctx, tried);
      if (next === null) return { ...attempt.response, status: 502 } satisfies PluginResponse;
      this.#logger.warn({ instance: failed, status: attempt.status, next }, 'ai instance failed, falling back');
      this.#use(ctx, st, next);
    }
  }


  destroy(): void {
    this.#client.close();
    this.#health.release();
  }
}

export const aiProxyMultiPlugin: PluginDef = {
  name: 'ai-proxy-multi',
  version: '0.5',
  priority: 1041,
  schema: aiProxyMultiSchema,
  // APISIX lists instances.auth.header / instances.auth.query; the codec reaches one nesting level only.
  encryptFields: ['instances.auth.header', 'instances.auth.query'],
  subsystems: ['http'],
  status: 'experimental',
  check(conf, schemaType) {
    if (schemaType !== 'route') return null;
    const names = new Set<string>();
    for (const ins of conf.instances as JsonObject[]) {
      const err = providerError(ins.provider) ?? targetError(ins);
      if (err !== null) return err;
      if (names.has(String(ins.name))) return `duplicate instance name: ${String(ins.name)}`;
      names.add(String(ins.name));
    }
    if ((conf.balancer as JsonObject | undefined)?.algorithm === 'semantic') return 'balancer algorithm semantic is not supported';
    return null;
  },
  create(conf, env) {
    return new AiProxyMulti(conf, env.scopeKey, env.logger);
  },
};
