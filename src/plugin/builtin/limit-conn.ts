// limit-conn (APISIX priority 1003): bounds concurrent requests (HTTP, access -> log) or sessions (stream,
// preread -> log) per key, as resty.limit.conn. Above `conn` and within `conn + burst` the request is delayed
// by unit_delay * floor((n - 1) / conn) seconds; above that it is rejected with `rejected_code` (503) and
// {"error_msg": rejected_msg} or nginx's error page. unit_delay starts at `default_conn_delay` and, unless
// `only_use_default_delay`, follows the observed HTTP latency (upstream response time when proxied).
// - key: `key_type` var | var_combination (unset -> remote_addr); or `rules[]` (key templates skipped when
//   they resolve no variable; conn/burst may be templates) counted one after the other;
// - policy local counts per node across all workers (counters/cluster.ts); redis and redis-cluster count
//   cluster-wide in a sorted set whose entries expire after `key_ttl` if a gateway dies holding them.
// Counters are keyed by the owner and a digest of the conf, so they survive unrelated config changes.
import { randomBytes } from 'node:crypto';
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Vars } from '../../router/vars.ts';
import type { HttpContext, StreamContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { REJECTED, type ConnStore } from '../counters/counter.ts';
import { nodeCounters } from '../counters/cluster.ts';
import { RedisCounterStore } from '../counters/redis.ts';
import { redisTargetOf } from '../counters/redis-client.ts';
import { connRedisCluster, connRedisSingle, policySchema } from '../counters/redis-schema.ts';
import { DynamicNumber, RequestKey, VarTemplate, type KeyType } from './limit-count/key.ts';
import { counterScope } from './limit-count/limiter.ts';

const intOrTemplate = (minimum: number): JsonObject => ({
  oneOf: [minimum > 0 ? { type: 'integer', exclusiveMinimum: 0 } : { type: 'integer', minimum: 0 }, { type: 'string' }],
});

const schema: JsonObject = {
  type: 'object',
  properties: {
    conn: intOrTemplate(1),
    burst: intOrTemplate(0),
    default_conn_delay: { type: 'number', exclusiveMinimum: 0 },
    only_use_default_delay: { type: 'boolean', default: false },
    key: { type: 'string' },
    key_type: { type: 'string', enum: ['var', 'var_combination'], default: 'var' },
    policy: { type: 'string', enum: ['redis', 'redis-cluster', 'local'], default: 'local' },
    // Switchyard extension: the prefix of the Redis keys (APISIX's fixed "limit_conn").
    redis_prefix: { type: 'string', minLength: 1, default: 'limit_conn', pattern: '^[0-9a-zA-Z|_]+$' },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
    rejected_msg: { type: 'string', minLength: 1 },
    allow_degradation: { type: 'boolean', default: false },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        properties: { conn: intOrTemplate(1), burst: intOrTemplate(0), key: { type: 'string' } },
        required: ['conn', 'burst', 'key'],
      },
    },
  },
  oneOf: [{ required: ['conn', 'burst', 'default_conn_delay', 'key'] }, { required: ['default_conn_delay', 'rules'] }],
  ...policySchema(connRedisSingle, connRedisCluster),
};

const FAILED: PluginResponse = Object.freeze({ status: 500 });
const DATA_KEY = 'limit-conn';
/** Slot ids are unique per process and gateway, so a Redis sorted set never mixes two requests. */
const PROC_TAG = `${randomBytes(6).toString('base64url')}:`;
let slotSeq = 0;

interface Rule {
  readonly conn: DynamicNumber;
  readonly burst: DynamicNumber;
  readonly key: RequestKey | null;
  readonly template: VarTemplate | null;
}

/** One acquired slot; stored per request/session so log releases exactly what access took. */
interface Slot {
  readonly owner: LimitConn;
  readonly key: string;
  readonly id: string;
  readonly delay: number;
}

function sleep(seconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.round(seconds * 1000)));
}

class LimitConn implements PluginInstance {
  readonly #rules: Rule[];
  readonly #delayOnly: boolean;
  #unitDelay: number;
  readonly #prefix: string;
  readonly #store: ConnStore;
  readonly #redis: RedisCounterStore | null;
  readonly #degrade: boolean;
  readonly #rejection: PluginResponse;
  readonly #logger: Logger;

  constructor(conf: JsonObject, scopeKey: string, logger: Logger) {
    if (Array.isArray(conf.rules)) {
      this.#rules = (conf.rules as JsonObject[]).map((r) => ({
        conn: new DynamicNumber(r.conn as number | string),
        burst: new DynamicNumber(r.burst as number | string, true),
        key: null,
        template: new VarTemplate(r.key as string),
      }));
    } else {
      this.#rules = [
        {
          conn: new DynamicNumber(conf.conn as number | string),
          burst: new DynamicNumber(conf.burst as number | string, true),
          key: new RequestKey((conf.key_type as KeyType | undefined) ?? 'var', conf.key as string),
          template: null,
        },
      ];
    }
    this.#unitDelay = conf.default_conn_delay as number;
    this.#delayOnly = conf.only_use_default_delay === true;
    const target = redisTargetOf(conf);
    this.#redis =
      target === null ? null : new RedisCounterStore(target, { connTtlSeconds: (conf.key_ttl as number | undefined) ?? 3600 });
    this.#store = this.#redis ?? nodeCounters;
    const scope = counterScope(conf, scopeKey);
    this.#prefix = this.#redis === null ? `limit_conn:${scope}:` : `${(conf.redis_prefix as string | undefined) ?? 'limit_conn'}:${scope}:`;
    this.#degrade = conf.allow_degradation === true;
    const status = (conf.rejected_code as number | undefined) ?? 503;
    this.#rejection =
      typeof conf.rejected_msg === 'string' ? { status, body: { error_msg: conf.rejected_msg } } : { status };
    this.#logger = logger;
  }

  // hot path
  #incoming(vars: Vars, data: Map<string, unknown>, i: number, matched: boolean): PhaseResult | Promise<PhaseResult> {
    for (; i < this.#rules.length; i++) {
      const rule = this.#rules[i]!;
      const conn = rule.conn.resolve(vars);
      const burst = rule.burst.resolve(vars);
      let key: string;
      if (rule.key !== null) {
        if (typeof conn === 'string' || typeof burst === 'string') return this.#noRules(conn, burst);
        key = rule.key.resolve(vars);
      } else {
        // As APISIX: a rule whose numbers or key do not resolve is skipped.
        if (typeof conn === 'string' || typeof burst === 'string') continue;
        key = rule.template!.render(vars);
        if (rule.template!.resolved === 0 && rule.template!.constant === null) continue;
      }
      matched = true;
      key = this.#prefix + key;
      const id = PROC_TAG + ++slotSeq;
      let n: number | Promise<number>;
      try {
        n = this.#store.connIn(key, conn + burst, id);
      } catch (err) {
        return this.#failed(err);
      }
      if (typeof n !== 'number') return this.#await(vars, data, i, n, key, id, conn);
      const res = this.#admit(data, n, key, id, conn);
      if (res === undefined) continue;
      if (res instanceof Promise) return i + 1 < this.#rules.length ? res.then(() => this.#incoming(vars, data, i + 1, true)) : res;
      return res;
    }
    return matched ? undefined : this.#noRules('no rule matched', '');
  }

  async #await(vars: Vars, data: Map<string, unknown>, i: number, p: Promise<number>, key: string, id: string, conn: number): Promise<PhaseResult> {
    let n: number;
    try {
      n = await p;
    } catch (err) {
      return this.#failed(err);
    }
    const res = this.#admit(data, n, key, id, conn);
    if (res instanceof Promise) await res;
    else if (res !== undefined) return res;
    return this.#incoming(vars, data, i + 1, true);
  }

  /** Records the slot and returns the rejection, a delay, or undefined. */
  #admit(data: Map<string, unknown>, n: number, key: string, id: string, conn: number): PluginResponse | Promise<void> | undefined {
    if (n === REJECTED) return this.#rejection;
    const delay = n > conn ? this.#unitDelay * Math.floor((n - 1) / conn) : 0;
    let slots = data.get(DATA_KEY) as Slot[] | undefined;
    if (slots === undefined) data.set(DATA_KEY, (slots = []));
    slots.push({ owner: this, key, id, delay });
    return delay >= 0.001 ? sleep(delay) : undefined;
  }

  #noRules(a: string | number, b: string | number): PluginResponse | undefined {
    this.#logger.error({ error: typeof a === 'string' ? a : b }, 'failed to get limit conn rules');
    return this.#degrade ? undefined : FAILED;
  }

  #failed(err: unknown): PluginResponse | undefined {
    this.#logger.error({ err }, 'failed to limit conn');
    return this.#degrade ? undefined : FAILED;
  }

  /**
   * Releases the slots this instance took. HTTP only (`total` >= 0): the latency feeds unit_delay unless
   * only_use_default_delay; APISIX takes the upstream response time when proxied, else the request time minus
   * the delay imposed.
   */
  #leaving(data: Map<string, unknown>, upstreamMs: number | undefined, total: number): void {
    const slots = data.get(DATA_KEY) as Slot[] | undefined;
    if (slots === undefined) return;
    for (let i = slots.length - 1; i >= 0; i--) {
      const s = slots[i]!;
      if (s.owner !== this) continue;
      slots.splice(i, 1);
      this.#store.connOut(s.key, s.id);
      if (total >= 0 && !this.#delayOnly) {
        const l = upstreamMs !== undefined ? upstreamMs / 1000 : Math.max(0, total - s.delay);
        this.#unitDelay = (this.#unitDelay + l) / 2;
      }
    }
    if (slots.length === 0) data.delete(DATA_KEY);
  }

  access(ctx: HttpContext): PhaseResult | Promise<PhaseResult> {
    return this.#incoming(ctx.vars, ctx.pluginData, 0, false);
  }

  log(ctx: HttpContext): void {
    if (!ctx.pluginData.has(DATA_KEY)) return;
    this.#leaving(ctx.pluginData, ctx.upstreamLatencyMs, Number(process.hrtime.bigint() - ctx.startNs) / 1e9);
  }

  preread(ctx: StreamContext): PhaseResult | Promise<PhaseResult> {
    return this.#incoming(ctx.vars, ctx.pluginData, 0, false);
  }

  // Stream sessions are long-lived: their duration says nothing about per-request latency (APISIX: HTTP only).
  streamLog(ctx: StreamContext): void {
    this.#leaving(ctx.pluginData, undefined, -1);
  }

  destroy(): void {
    this.#redis?.release();
  }
}

/** Test/diagnostic view of the number of keys holding local slots in this process. */
export function limitConnTrackedKeys(): number {
  return (nodeCounters as { conns?: { size: number } }).conns?.size ?? 0;
}

export const limitConnPlugin: PluginDef = {
  name: 'limit-conn',
  version: '0.1',
  priority: 1003,
  schema,
  encryptFields: ['redis_password'],
  subsystems: ['http', 'stream'],
  status: 'stable',
  create(conf, env) {
    return new LimitConn(conf, env.scopeKey, env.logger);
  },
};

export default limitConnPlugin;
