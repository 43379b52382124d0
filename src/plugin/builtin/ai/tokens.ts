// Token budgets per key and fixed window, charged with a cost (the tokens a response used) rather than one per
// request, which the shared counter stores (counters/*) do not offer. `take(key, w, 0)` reads the window
// (APISIX's dry run, which also starts the window as resty.limit.count does); a positive cost is charged even
// past the limit, since the tokens were spent anyway. Local: per process. Redis: one atomic script on one key
// over the shared connection of counters/redis-client.ts (Redis clock, works on a Redis Cluster).
import { RedisHandle, registerScripts, type RedisTarget } from '../../counters/redis-client.ts';

export interface TokenWindow {
  /** Tokens charged in the current window, this cost included. */
  readonly used: number;
  readonly resetMs: number;
}

export interface TokenStore {
  take(key: string, windowMs: number, cost: number): TokenWindow | Promise<TokenWindow>;
  release(): void;
}

interface Slot {
  used: number;
  end: number;
}

const MAX_KEYS = 100_000;

class LocalTokens implements TokenStore {
  readonly #slots = new Map<string, Slot>();

  take(key: string, windowMs: number, cost: number): TokenWindow {
    const now = Date.now();
    let s = this.#slots.get(key);
    if (s === undefined || now >= s.end) {
      if (s === undefined && this.#slots.size >= MAX_KEYS) this.#sweep(now);
      s = { used: 0, end: now + windowMs };
      this.#slots.set(key, s);
    }
    s.used += cost;
    return { used: s.used, resetMs: s.end - now };
  }

  #sweep(now: number): void {
    for (const [k, s] of this.#slots) if (now >= s.end) this.#slots.delete(k);
    for (const k of this.#slots.keys()) {
      if (this.#slots.size < MAX_KEYS) break;
      this.#slots.delete(k);
    }
  }

  release(): void {}
}

/** The process-wide local store, shared by every ai-rate-limiting instance so budgets survive reloads. */
export const localTokens: TokenStore = new LocalTokens();

const TAKE_SCRIPT = `
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`;

registerScripts([{ name: 'swyAiTokens', lua: TAKE_SCRIPT }]);

type Scripted = { swyAiTokens(key: string, windowMs: number, cost: number): Promise<[number, number]> };

export class RedisTokens implements TokenStore {
  readonly #handle: RedisHandle;

  constructor(target: RedisTarget) {
    this.#handle = new RedisHandle(target);
  }

  async take(key: string, windowMs: number, cost: number): Promise<TokenWindow> {
    const c = this.#handle.client as unknown as Scripted;
    const [used, ttl] = await c.swyAiTokens(key, windowMs, cost);
    return { used: Number(used), resetMs: Number(ttl) };
  }

  release(): void {
    this.#handle.release();
  }
}
