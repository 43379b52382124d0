// Shared Redis connections of the rate limiting plugins, for APISIX's three Redis policies: `redis` (one
// server), `redis-cluster` (`redis_cluster_nodes`) and `redis-sentinel` (`redis_sentinels` +
// `redis_master_name`). One connection per target per process, reference-counted by the plugin instances using
// it and closed shortly after the last one is destroyed (a config swap re-acquires before releasing). Every
// command is bounded by the target's timeout (also while queued during a (re)connect), so an unreachable Redis
// costs at most that long per request; clients reconnect in the background with a capped backoff.
import { createHash } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import type { JsonObject } from '../../config/resources.ts';

export type RedisTarget =
  | {
      readonly kind: 'single';
      readonly host: string;
      readonly port: number;
      readonly username?: string;
      readonly password?: string;
      readonly database: number;
      readonly timeoutMs: number;
      readonly tls: boolean;
      readonly tlsVerify: boolean;
    }
  | {
      readonly kind: 'cluster';
      readonly nodes: readonly { host: string; port: number }[];
      readonly password?: string;
      readonly timeoutMs: number;
      readonly tls: boolean;
      readonly tlsVerify: boolean;
    }
  | {
      readonly kind: 'sentinel';
      readonly sentinels: readonly { host: string; port: number }[];
      readonly masterName: string;
      readonly role: 'master' | 'slave';
      readonly username?: string;
      readonly password?: string;
      readonly sentinelUsername?: string;
      readonly sentinelPassword?: string;
      readonly database: number;
      readonly connectTimeoutMs: number;
      readonly timeoutMs: number;
    };

function optStr(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function num(v: unknown, fallback: number): number {
  return typeof v === 'number' ? v : fallback;
}

/** `host:port` (or `[v6]:port`) of redis_cluster_nodes. */
function hostPort(s: string): { host: string; port: number } {
  const at = s.lastIndexOf(':');
  if (at <= 0) return { host: s, port: 6379 };
  const host = s.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(s.slice(at + 1)) || 6379 };
}

/** The Redis target of a plugin conf whose `policy` is redis, redis-cluster or redis-sentinel; else null. */
export function redisTargetOf(conf: JsonObject): RedisTarget | null {
  const password = optStr(conf.redis_password);
  if (conf.policy === 'redis') {
    return {
      kind: 'single',
      host: conf.redis_host as string,
      port: num(conf.redis_port, 6379),
      username: optStr(conf.redis_username),
      password,
      database: num(conf.redis_database, 0),
      timeoutMs: num(conf.redis_timeout, 1000),
      tls: conf.redis_ssl === true,
      tlsVerify: conf.redis_ssl_verify === true,
    };
  }
  if (conf.policy === 'redis-cluster') {
    return {
      kind: 'cluster',
      nodes: (conf.redis_cluster_nodes as string[]).map(hostPort),
      password,
      timeoutMs: num(conf.redis_timeout, 1000),
      tls: conf.redis_cluster_ssl === true,
      tlsVerify: conf.redis_cluster_ssl_verify === true,
    };
  }
  if (conf.policy === 'redis-sentinel') {
    return {
      kind: 'sentinel',
      sentinels: (conf.redis_sentinels as { host: string; port: number }[]).map((s) => ({ host: s.host, port: s.port })),
      masterName: conf.redis_master_name as string,
      role: conf.redis_role === 'slave' ? 'slave' : 'master',
      username: optStr(conf.redis_username),
      password,
      sentinelUsername: optStr(conf.sentinel_username),
      sentinelPassword: optStr(conf.sentinel_password),
      database: num(conf.redis_database, 0),
      connectTimeoutMs: num(conf.redis_connect_timeout, 1000),
      timeoutMs: num(conf.redis_read_timeout, 1000),
    };
  }
  return null;
}

export type RedisClient = Redis | Cluster;

/** Lua scripts every shared client knows, defined once per connection (EVALSHA with EVAL fallback). */
export interface ScriptDef {
  readonly name: string;
  readonly lua: string;
}

/** Every script of every store, so one shared connection serves limit-count, limit-req and limit-conn alike. */
const ALL_SCRIPTS: ScriptDef[] = [];

export function registerScripts(scripts: readonly ScriptDef[]): void {
  for (const s of scripts) if (!ALL_SCRIPTS.some((x) => x.name === s.name)) ALL_SCRIPTS.push(s);
}

interface Shared {
  readonly client: RedisClient;
  refs: number;
  closeTimer: NodeJS.Timeout | null;
}

const CLOSE_GRACE_MS = 5_000;
const shared = new Map<string, Shared>();

function identity(t: RedisTarget): string {
  // Secrets are part of the identity but never kept in clear in a map key.
  const digest = (s: string | undefined) => (s === undefined ? '' : createHash('sha256').update(s).digest('base64url'));
  return JSON.stringify({
    ...t,
    password: digest(t.password),
    ...(t.kind === 'sentinel' ? { sentinelPassword: digest(t.sentinelPassword) } : {}),
  });
}

const retryStrategy = (times: number): number => Math.min(100 * times, 2_000);

function connect(t: RedisTarget): RedisClient {
  let client: RedisClient;
  if (t.kind === 'cluster') {
    const tls = t.tls ? { rejectUnauthorized: t.tlsVerify } : undefined;
    client = new Cluster(t.nodes.map((n) => ({ host: n.host, port: n.port })), {
      enableOfflineQueue: true,
      clusterRetryStrategy: retryStrategy,
      slotsRefreshTimeout: t.timeoutMs,
      redisOptions: {
        password: t.password,
        connectTimeout: t.timeoutMs,
        commandTimeout: t.timeoutMs,
        maxRetriesPerRequest: 0,
        tls,
      },
    });
  } else if (t.kind === 'sentinel') {
    client = new Redis({
      sentinels: t.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: t.masterName,
      role: t.role,
      username: t.username,
      password: t.password,
      sentinelUsername: t.sentinelUsername,
      sentinelPassword: t.sentinelPassword,
      db: t.database,
      connectTimeout: t.connectTimeoutMs,
      commandTimeout: t.timeoutMs,
      enableOfflineQueue: true,
      maxRetriesPerRequest: 0,
      retryStrategy,
      sentinelRetryStrategy: retryStrategy,
    });
  } else {
    client = new Redis({
      host: t.host,
      port: t.port,
      username: t.username,
      password: t.password,
      db: t.database,
      connectTimeout: t.timeoutMs,
      commandTimeout: t.timeoutMs,
      enableOfflineQueue: true,
      maxRetriesPerRequest: 0,
      retryStrategy,
      tls: t.tls ? { servername: t.host, rejectUnauthorized: t.tlsVerify } : undefined,
    });
  }
  // Connection errors surface as command failures; the event must have a listener or Node throws.
  client.on('error', () => undefined);
  for (const s of ALL_SCRIPTS) client.defineCommand(s.name, { numberOfKeys: 1, lua: s.lua });
  return client;
}

/** A reference to the shared client of one target; release() when the owning plugin instance is destroyed. */
export class RedisHandle {
  readonly #key: string;
  readonly #entry: Shared;
  #released = false;
  /**
   * Set for cluster and sentinel targets: ioredis keeps their commands queued past commandTimeout while it
   * cannot fetch the slot map or resolve the master, so the store bounds each call itself.
   */
  readonly boundMs: number | null;

  constructor(target: RedisTarget) {
    this.boundMs = target.kind === 'single' ? null : target.timeoutMs;
    this.#key = identity(target);
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

  get client(): RedisClient {
    return this.#entry.client;
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
