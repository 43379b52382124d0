// Rate limiting state in Redis, shared by every gateway using the same target (redis-client.ts). Each operation
// is one atomic Lua script on ONE key, so it runs unchanged on a Redis Cluster (one slot) and never lets two
// concurrent requests both read a stale value:
// - window counts (limit-count): fixed windows INCR + PEXPIRE on first use; sliding windows keep the counts of
//   epoch-aligned windows as fields of one hash and weight the previous one; cost-charged fixed windows
//   (ai-rate-limiting) INCRBY + PEXPIRE on first use;
// - leaky buckets (limit-req): a hash {excess, last}, same arithmetic as the local store (leaky.ts);
// - in-flight slots (limit-conn): a sorted set of request ids scored by their expiry (`key_ttl`), so slots of
//   a gateway that died expire instead of leaking.
// Scripts read the Redis clock so that every gateway agrees on windows and drain times.
import type { Redis } from 'ioredis';
import {
  REJECTED,
  type ConnStore,
  type CostCounterStore,
  type CostResult,
  type CounterResult,
  type CounterStore,
  type LeakyBucketStore,
  type WindowType,
} from './counter.ts';
import { RedisHandle, registerScripts, type RedisTarget } from './redis-client.ts';

export { closeRedisCounters, redisConnectionCount } from './redis-client.ts';

const NOW_MS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

const FIXED_SCRIPT = `
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`;

const COST_SCRIPT = `
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`;

const SLIDING_SCRIPT = `${NOW_MS}
local w = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local idx = math.floor(now / w)
local cur = tonumber(redis.call('HGET', KEYS[1], tostring(idx)) or '0')
local prev = tonumber(redis.call('HGET', KEYS[1], tostring(idx - 1)) or '0')
local elapsed = now - idx * w
local count = math.floor(prev * (w - elapsed) / w) + cur + 1
if count > limit then
  local reset = w - elapsed
  if cur < limit and prev > 0 then
    reset = math.max(0, reset - (limit - cur) * w / prev)
  end
  return {count, math.floor(reset), 0}
end
redis.call('HINCRBY', KEYS[1], tostring(idx), 1)
redis.call('HDEL', KEYS[1], tostring(idx - 2))
redis.call('PEXPIRE', KEYS[1], w * 2)
return {count, w - elapsed, 1}
`;

const LEAK_SCRIPT = `${NOW_MS}
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local s = redis.call('HMGET', KEYS[1], 'excess', 'last')
local excess = 0
if s[1] and s[2] then
  excess = math.max(tonumber(s[1]) - rate * math.abs(now - tonumber(s[2])) / 1000 + 1, 0)
  if excess > burst then
    return {0, tostring(excess)}
  end
end
redis.call('HSET', KEYS[1], 'excess', tostring(excess), 'last', tostring(now))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, tostring(excess)}
`;

const CONN_IN_SCRIPT = `
local now = tonumber(redis.call('TIME')[1])
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  return {0, count}
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
redis.call('EXPIRE', KEYS[1], ttl)
return {1, count + 1}
`;

registerScripts([
  { name: 'swyFixed', lua: FIXED_SCRIPT },
  { name: 'swySliding', lua: SLIDING_SCRIPT },
  { name: 'swyCost', lua: COST_SCRIPT },
  { name: 'swyLeak', lua: LEAK_SCRIPT },
  { name: 'swyConnIn', lua: CONN_IN_SCRIPT },
]);

type Scripted = Redis & {
  swyFixed(key: string, windowMs: number): Promise<[number, number]>;
  swySliding(key: string, windowMs: number, limit: number): Promise<[number, number, number]>;
  swyCost(key: string, windowMs: number, cost: number): Promise<[number, number]>;
  swyLeak(key: string, rate: number, burst: number, ttl: number): Promise<[number, string]>;
  swyConnIn(key: string, limit: number, ttl: number, id: string): Promise<[number, number]>;
};

function bounded<T>(p: Promise<T>, ms: number | null): Promise<T> {
  if (ms === null) return p;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis command timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err as Error);
      },
    );
  });
}

/** One plugin instance's use of a shared Redis connection; release() when the instance is destroyed. */
export class RedisCounterStore implements CounterStore, CostCounterStore, LeakyBucketStore, ConnStore {
  readonly #handle: RedisHandle;
  readonly #connTtl: number;

  constructor(target: RedisTarget, opts: { connTtlSeconds?: number } = {}) {
    this.#handle = new RedisHandle(target);
    this.#connTtl = opts.connTtlSeconds ?? 3600;
  }

  get #c(): Scripted {
    // Cluster exposes the same defined commands; the cast names them.
    return this.#handle.client as Scripted;
  }

  async incr(key: string, windowMs: number, limit: number, type: WindowType): Promise<CounterResult> {
    if (type === 'sliding') {
      const [count, resetMs, ok] = await bounded(this.#c.swySliding(key, windowMs, limit), this.#handle.boundMs);
      return { count: Number(count), resetMs: Number(resetMs), allowed: Number(ok) === 1 };
    }
    const [count, ttl] = await bounded(this.#c.swyFixed(key, windowMs), this.#handle.boundMs);
    return { count: Number(count), resetMs: Number(ttl), allowed: Number(count) <= limit };
  }

  async incrBy(key: string, windowMs: number, cost: number): Promise<CostResult> {
    const [count, ttl] = await bounded(this.#c.swyCost(key, windowMs, cost), this.#handle.boundMs);
    return { count: Number(count), resetMs: Number(ttl) };
  }

  async leak(key: string, rate: number, burst: number): Promise<number> {
    const ttl = Math.ceil(burst / rate) + 1;
    const [ok, excess] = await bounded(this.#c.swyLeak(key, rate, burst, ttl), this.#handle.boundMs);
    return Number(ok) === 1 ? Number(excess) / rate : REJECTED;
  }

  async connIn(key: string, limit: number, id: string): Promise<number> {
    const [ok, n] = await bounded(this.#c.swyConnIn(key, limit, this.#connTtl, id), this.#handle.boundMs);
    return Number(ok) === 1 ? Number(n) : REJECTED;
  }

  /** Fire and forget: a failed release expires with key_ttl. */
  connOut(key: string, id: string): void {
    this.#c.zrem(key, id).catch(() => undefined);
  }

  release(): void {
    this.#handle.release();
  }
}
