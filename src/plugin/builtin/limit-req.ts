// limit-req (APISIX priority 1001, access phase): a leaky bucket per key (lua-resty-limit-traffic's
// resty.limit.req). Requests beyond `rate`/s are delayed by excess / rate seconds while the excess stays within
// `burst`, or let through at once with `nodelay`; beyond that they are rejected with `rejected_code` (503) and
// {"error_msg": rejected_msg} or nginx's error page.
// - key: `key_type` var (one variable) or var_combination (a template); an unset key falls back to remote_addr;
// - policy local counts per node across all workers (counters/cluster.ts); redis and redis-cluster share the
//   bucket between gateways (counters/redis.ts); a Redis failure answers 500 unless `allow_degradation`.
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { REJECTED, type LeakyBucketStore } from '../counters/counter.ts';
import { nodeCounters } from '../counters/cluster.ts';
import { RedisCounterStore } from '../counters/redis.ts';
import { redisTargetOf } from '../counters/redis-client.ts';
import { policySchema, redisCluster, redisSingle } from '../counters/redis-schema.ts';
import { RequestKey, type KeyType } from './limit-count/key.ts';
import { counterScope } from './limit-count/limiter.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    rate: { type: 'number', exclusiveMinimum: 0 },
    burst: { type: 'number', minimum: 0 },
    key: { type: 'string' },
    key_type: { type: 'string', enum: ['var', 'var_combination'], default: 'var' },
    policy: { type: 'string', enum: ['redis', 'redis-cluster', 'local'], default: 'local' },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
    rejected_msg: { type: 'string', minLength: 1 },
    nodelay: { type: 'boolean', default: false },
    allow_degradation: { type: 'boolean', default: false },
  },
  required: ['rate', 'burst', 'key'],
  ...policySchema(redisSingle, redisCluster),
};

const FAILED: PluginResponse = Object.freeze({ status: 500 });

function sleep(seconds: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(resolve, Math.round(seconds * 1000), undefined));
}

class LimitReq implements PluginInstance {
  readonly #rate: number;
  readonly #burst: number;
  readonly #nodelay: boolean;
  readonly #key: RequestKey;
  readonly #prefix: string;
  readonly #store: LeakyBucketStore;
  readonly #redis: RedisCounterStore | null;
  readonly #degrade: boolean;
  readonly #rejection: PluginResponse;
  readonly #logger: Logger;

  constructor(conf: JsonObject, scopeKey: string, logger: Logger) {
    this.#rate = conf.rate as number;
    this.#burst = conf.burst as number;
    this.#nodelay = conf.nodelay === true;
    this.#key = new RequestKey((conf.key_type as KeyType | undefined) ?? 'var', conf.key as string);
    const target = redisTargetOf(conf);
    this.#redis = target === null ? null : new RedisCounterStore(target);
    this.#store = this.#redis ?? nodeCounters;
    this.#prefix = `limit_req:${counterScope(conf, scopeKey)}:`;
    this.#degrade = conf.allow_degradation === true;
    const status = (conf.rejected_code as number | undefined) ?? 503;
    this.#rejection =
      typeof conf.rejected_msg === 'string' ? { status, body: { error_msg: conf.rejected_msg } } : { status };
    this.#logger = logger;
  }

  // hot path
  access(ctx: HttpContext): PhaseResult | Promise<PhaseResult> {
    const key = this.#prefix + this.#key.resolve(ctx.vars);
    let d: number | Promise<number>;
    try {
      d = this.#store.leak(key, this.#rate, this.#burst);
    } catch (err) {
      return this.#failed(err);
    }
    if (typeof d === 'number') return this.#decide(d);
    return d.then(
      (v) => this.#decide(v),
      (err: unknown) => this.#failed(err),
    );
  }

  #decide(delay: number): PhaseResult | Promise<PhaseResult> {
    if (delay === REJECTED) return this.#rejection;
    if (delay >= 0.001 && !this.#nodelay) return sleep(delay);
    return undefined;
  }

  #failed(err: unknown): PluginResponse | undefined {
    this.#logger.error({ err }, 'failed to limit req');
    return this.#degrade ? undefined : FAILED;
  }

  destroy(): void {
    this.#redis?.release();
  }
}

export const limitReqPlugin: PluginDef = {
  name: 'limit-req',
  version: '0.1',
  priority: 1001,
  schema,
  encryptFields: ['redis_password'],
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    return new LimitReq(conf, env.scopeKey, env.logger);
  },
};

export default limitReqPlugin;
