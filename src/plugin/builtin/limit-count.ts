// limit-count (APISIX priority 1002, access phase): at most `count` requests per `time_window` seconds per key.
// - key: `key_type` var (default, `key` = remote_addr) | var_combination | constant; see limit-count/key.ts;
// - window_type fixed (APISIX: the window starts at the key's first request) or sliding (the previous
//   epoch-aligned window weighted by its remaining share);
// - counters live in a module-level store keyed by the plugin scope (route/service/global rule) and the
//   conf's count/window, or by `group` (routes sharing a group share counters), so they survive snapshots;
// - policy local (per process) or redis (shared through Redis, counters/redis.ts); redis-cluster is refused;
//   a Redis failure answers 500 {"error_msg":"failed to limit count"} unless `allow_degradation`;
// - rejected: `rejected_code` (503) with {"error_msg": rejected_msg} or nginx's error page;
// - show_limit_quota_header: X-RateLimit-Limit / -Remaining / -Reset (names from plugin_metadata).
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import type { CounterResult, CounterStore, WindowType } from '../counters/counter.ts';
import { localCounters } from '../counters/local.ts';
import { RedisCounterStore } from '../counters/redis.ts';
import { RequestKey, type KeyType } from './limit-count/key.ts';

const redisProps: JsonObject = {
  redis_host: { type: 'string', minLength: 2 },
  redis_port: { type: 'integer', minimum: 1, default: 6379 },
  redis_username: { type: 'string', minLength: 1 },
  redis_password: { type: 'string', minLength: 0 },
  redis_database: { type: 'integer', minimum: 0, default: 0 },
  redis_timeout: { type: 'integer', minimum: 1, default: 1000 },
  redis_ssl: { type: 'boolean', default: false },
  redis_ssl_verify: { type: 'boolean', default: false },
  // Switchyard extension: the prefix of every Redis key this plugin writes.
  redis_prefix: { type: 'string', minLength: 1, pattern: '^[0-9a-zA-Z|_:-]+$', default: 'plugin-limit-count' },
};

const schema: JsonObject = {
  type: 'object',
  properties: {
    count: { type: 'integer', exclusiveMinimum: 0 },
    time_window: { type: 'integer', exclusiveMinimum: 0 },
    window_type: { type: 'string', enum: ['fixed', 'sliding'], default: 'fixed' },
    group: { type: 'string' },
    key: { type: 'string', default: 'remote_addr' },
    key_type: { type: 'string', enum: ['var', 'var_combination', 'constant'], default: 'var' },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
    rejected_msg: { type: 'string', minLength: 1 },
    policy: { type: 'string', enum: ['local', 'redis', 'redis-cluster'], default: 'local' },
    allow_degradation: { type: 'boolean', default: false },
    show_limit_quota_header: { type: 'boolean', default: true },
    ...redisProps,
  },
  required: ['count', 'time_window'],
  if: { properties: { policy: { enum: ['redis'] } } },
  then: { required: ['redis_host'] },
};

const metadataSchema: JsonObject = {
  type: 'object',
  properties: {
    limit_header: { type: 'string', default: 'X-RateLimit-Limit' },
    remaining_header: { type: 'string', default: 'X-RateLimit-Remaining' },
    reset_header: { type: 'string', default: 'X-RateLimit-Reset' },
  },
};

const FAILED: PluginResponse = Object.freeze({ status: 500, body: Object.freeze({ error_msg: 'failed to limit count' }) });

function str(v: unknown, fallback: string): string {
  return typeof v === 'string' ? v : fallback;
}

class LimitCount implements PluginInstance {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #windowType: WindowType;
  readonly #key: RequestKey;
  readonly #prefix: string;
  readonly #store: CounterStore;
  readonly #redis: RedisCounterStore | null;
  readonly #degrade: boolean;
  readonly #showHeaders: boolean;
  readonly #rejection: PluginResponse;
  readonly #limitHeader: string;
  readonly #remainingHeader: string;
  readonly #resetHeader: string;
  readonly #limitText: string;
  readonly #logger: Logger;

  constructor(conf: JsonObject, scopeKey: string, metadata: JsonObject | undefined, logger: Logger) {
    this.#limit = conf.count as number;
    this.#windowMs = (conf.time_window as number) * 1000;
    this.#windowType = conf.window_type === 'sliding' ? 'sliding' : 'fixed';
    this.#key = new RequestKey((conf.key_type as KeyType | undefined) ?? 'var', str(conf.key, 'remote_addr'));
    const scope =
      typeof conf.group === 'string'
        ? `group:${conf.group}`
        : `${scopeKey}:${this.#limit}:${conf.time_window as number}:${this.#windowType}`;
    if (conf.policy === 'redis') {
      this.#redis = new RedisCounterStore({
        host: conf.redis_host as string,
        port: (conf.redis_port as number | undefined) ?? 6379,
        username: conf.redis_username as string | undefined,
        password: conf.redis_password as string | undefined,
        database: (conf.redis_database as number | undefined) ?? 0,
        timeoutMs: (conf.redis_timeout as number | undefined) ?? 1000,
        tls: conf.redis_ssl === true,
        tlsVerify: conf.redis_ssl_verify === true,
      });
      this.#store = this.#redis;
      this.#prefix = `${str(conf.redis_prefix, 'plugin-limit-count')}:${scope}:`;
    } else {
      this.#redis = null;
      this.#store = localCounters;
      this.#prefix = `${scope}:`;
    }
    this.#degrade = conf.allow_degradation === true;
    this.#showHeaders = conf.show_limit_quota_header !== false;
    const status = (conf.rejected_code as number | undefined) ?? 503;
    this.#rejection =
      typeof conf.rejected_msg === 'string' ? { status, body: { error_msg: conf.rejected_msg } } : { status };
    this.#limitHeader = str(metadata?.limit_header, 'X-RateLimit-Limit');
    this.#remainingHeader = str(metadata?.remaining_header, 'X-RateLimit-Remaining');
    this.#resetHeader = str(metadata?.reset_header, 'X-RateLimit-Reset');
    this.#limitText = String(this.#limit);
    this.#logger = logger;
  }

  // hot path
  access(ctx: HttpContext): PhaseResult | Promise<PhaseResult> {
    const key = this.#prefix + this.#key.resolve(ctx.vars);
    if (this.#redis !== null) return this.#remote(ctx, key);
    return this.#decide(ctx, localCounters.incr(key, this.#windowMs, this.#limit, this.#windowType));
  }

  async #remote(ctx: HttpContext, key: string): Promise<PhaseResult> {
    let r: CounterResult;
    try {
      r = await this.#store.incr(key, this.#windowMs, this.#limit, this.#windowType);
    } catch (err) {
      this.#logger.error({ err: (err as Error).message }, 'failed to limit count');
      return this.#degrade ? undefined : FAILED;
    }
    return this.#decide(ctx, r);
  }

  // hot path
  #decide(ctx: HttpContext, r: CounterResult): PluginResponse | undefined {
    if (this.#showHeaders) {
      const res = ctx.response;
      res.setHeader(this.#limitHeader, this.#limitText);
      res.setHeader(this.#remainingHeader, r.allowed ? String(Math.max(0, this.#limit - r.count)) : '0');
      res.setHeader(this.#resetHeader, String(Math.max(0, Math.ceil(r.resetMs / 1000))));
    }
    return r.allowed ? undefined : this.#rejection;
  }

  destroy(): void {
    this.#redis?.release();
  }
}

export const limitCountPlugin: PluginDef = {
  name: 'limit-count',
  version: '0.5',
  priority: 1002,
  schema,
  metadataSchema,
  subsystems: ['http'],
  status: 'stable',
  check(conf, schemaType) {
    if (schemaType === 'metadata') return null;
    if (conf.policy === 'redis-cluster') return 'policy "redis-cluster" is not supported yet; use "redis"';
    return null;
  },
  create(conf, env) {
    return new LimitCount(conf, env.scopeKey, env.metadata, env.logger);
  },
};

export default limitCountPlugin;
