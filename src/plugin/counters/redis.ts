// Window counters in Redis, shared by every gateway instance using the same Redis target. One connection per
// target (host, port, database, user, password, TLS) per process, reference-counted by the plugin instances
// using it and closed shortly after the last one is destroyed (a config swap re-acquires before releasing).
// Each count is one atomic Lua script: fixed windows INCR + PEXPIRE on first use; sliding windows keep a
// counter per epoch-aligned window and weight the previous one, using the Redis clock so that every gateway
// agrees on window boundaries. Every command is bounded by `timeoutMs` (also while queued during a
// (re)connect), so an unreachable Redis costs at most that long per request; the client reconnects in the
// background with a capped backoff.
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import type { CounterResult, CounterStore, WindowType } from './counter.ts';

export interface RedisTarget {
  readonly host: string;
  readonly port: number;
  readonly username?: string;
  readonly password?: string;
  readonly database: number;
  readonly timeoutMs: number;
  readonly tls: boolean;
  readonly tlsVerify: boolean;
}

const FIXED_SCRIPT = `
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`;

const SLIDING_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local idx = math.floor(now / w)
local cur_key = KEYS[1] .. ':' .. idx
local cur = tonumber(redis.call('GET', cur_key) or '0')
local prev = tonumber(redis.call('GET', KEYS[1] .. ':' .. (idx - 1)) or '0')
local elapsed = now - idx * w
local count = math.floor(prev * (w - elapsed) / w) + cur + 1
if count > limit then
  return {count, w - elapsed, 0}
end
redis.call('INCR', cur_key)
redis.call('PEXPIRE', cur_key, w * 2)
return {count, w - elapsed, 1}
`;

type Scripted = Redis & {
  swyFixed(key: string, windowMs: number): Promise<[number, number]>;
  swySliding(key: string, windowMs: number, limit: number): Promise<[number, number, number]>;
};

interface Shared {
  readonly client: Scripted;
  refs: number;
  closeTimer: NodeJS.Timeout | null;
}

const CLOSE_GRACE_MS = 5_000;
const shared = new Map<string, Shared>();

function targetKey(t: RedisTarget): string {
  // The password is part of the identity but never kept in clear in a map key.
  const pw = t.password === undefined ? '' : createHash('sha256').update(t.password).digest('base64url');
  return `${t.host}\0${t.port}\0${t.database}\0${t.username ?? ''}\0${pw}\0${t.tls}\0${t.tlsVerify}\0${t.timeoutMs}`;
}

function connect(t: RedisTarget): Scripted {
  const client = new Redis({
    host: t.host,
    port: t.port,
    username: t.username,
    password: t.password,
    db: t.database,
    connectTimeout: t.timeoutMs,
    commandTimeout: t.timeoutMs,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 0,
    retryStrategy: (times: number) => Math.min(100 * times, 2_000),
    tls: t.tls ? { servername: t.host, rejectUnauthorized: t.tlsVerify } : undefined,
    lazyConnect: false,
  });
  // Connection errors surface as command failures; the event must have a listener or Node throws.
  client.on('error', () => undefined);
  client.defineCommand('swyFixed', { numberOfKeys: 1, lua: FIXED_SCRIPT });
  client.defineCommand('swySliding', { numberOfKeys: 1, lua: SLIDING_SCRIPT });
  return client as Scripted;
}

export class RedisCounterStore implements CounterStore {
  readonly #key: string;
  readonly #entry: Shared;
  #released = false;

  /** Acquires the shared connection of `target`; call release() when the owner is destroyed. */
  constructor(target: RedisTarget) {
    this.#key = targetKey(target);
    let e = shared.get(this.#key);
    if (e === undefined) {
      e = { client: connect(target), refs: 0, closeTimer: null };
      shared.set(this.#key, e);
    }
    if (e.closeTimer !== null) {
      clearTimeout(e.closeTimer);
      e.closeTimer = null;
    }
    e.refs++;
    this.#entry = e;
  }

  async incr(key: string, windowMs: number, limit: number, type: WindowType): Promise<CounterResult> {
    const c = this.#entry.client;
    if (type === 'sliding') {
      const [count, resetMs, ok] = await c.swySliding(key, windowMs, limit);
      return { count: Number(count), resetMs: Number(resetMs), allowed: Number(ok) === 1 };
    }
    const [count, ttl] = await c.swyFixed(key, windowMs);
    return { count: Number(count), resetMs: Number(ttl), allowed: Number(count) <= limit };
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    const e = this.#entry;
    if (--e.refs > 0) return;
    e.closeTimer = setTimeout(() => {
      if (e.refs > 0 || shared.get(this.#key) !== e) return;
      shared.delete(this.#key);
      e.client.disconnect();
    }, CLOSE_GRACE_MS);
    e.closeTimer.unref();
  }
}

/** Number of open shared Redis connections (diagnostics, tests). */
export function redisConnectionCount(): number {
  return shared.size;
}

/** Closes every shared connection now (process shutdown). */
export function closeRedisCounters(): void {
  for (const e of shared.values()) {
    if (e.closeTimer !== null) clearTimeout(e.closeTimer);
    e.client.disconnect();
  }
  shared.clear();
}
