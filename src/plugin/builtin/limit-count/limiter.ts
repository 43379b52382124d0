// The limit-count instance: one or several windows (`rules`) counted per request key; see ../limit-count.ts.
// Rules are compiled at create(); a request goes through them in order and the first that rejects ends it.
// The local policy counts node-wide (counters/cluster.ts): synchronous in a single process, one batched IPC
// round trip in a cluster worker. Redis policies share counts between gateways.
import { createHash } from 'node:crypto';
import type { JsonObject } from '../../../config/resources.ts';
import type { Logger } from '../../../observability/logger.ts';
import type { Vars } from '../../../router/vars.ts';
import type { HttpContext } from '../../context.ts';
import type { PhaseResult, PluginInstance, PluginResponse } from '../../plugin.ts';
import type { CounterResult, CounterStore, WindowType } from '../../counters/counter.ts';
import { nodeCounters } from '../../counters/cluster.ts';
import { RedisCounterStore } from '../../counters/redis.ts';
import { redisTargetOf } from '../../counters/redis-client.ts';
import { DynamicNumber, RequestKey, VarTemplate, type KeyType } from './key.ts';

const FAILED: PluginResponse = Object.freeze({ status: 500, body: Object.freeze({ error_msg: 'failed to limit count' }) });
const NO_RULES: PluginResponse = Object.freeze({ status: 500 });

interface Headers {
  readonly limit: string;
  readonly remaining: string;
  readonly reset: string;
}

interface Rule {
  readonly count: DynamicNumber;
  readonly window: DynamicNumber;
  /** `rules[]` keys are templates that must resolve; the top-level key is a RequestKey. */
  readonly template: VarTemplate | null;
  readonly key: RequestKey | null;
  /** Counter key prefix of this rule. */
  readonly prefix: string;
  readonly headers: Headers;
}

function str(v: unknown, fallback: string): string {
  return typeof v === 'string' ? v : fallback;
}

/** APISIX puts a rule's header_prefix before "RateLimit-" of each header name (X-RateLimit-Limit -> X-1-RateLimit-Limit). */
function prefixed(h: Headers, prefix: string | null): Headers {
  if (prefix === null) return h;
  const f = (name: string) => name.replace('RateLimit-', `${prefix}-RateLimit-`);
  return { limit: f(h.limit), remaining: f(h.remaining), reset: f(h.reset) };
}

/** Seconds to the window's end with two decimals, as APISIX prints them (60, 59.97). */
function resetText(ms: number): string {
  return String(Math.floor(Math.max(0, ms) / 10) / 100);
}

/** Counter scope of a conf: its group, or the owner and a digest of the conf (APISIX's conf_version). */
export function counterScope(conf: JsonObject, scopeKey: string): string {
  if (typeof conf.group === 'string') return `group:${conf.group}`;
  const { _meta: _ignored, ...rest } = conf;
  return `${scopeKey}:${createHash('sha1').update(JSON.stringify(rest)).digest('base64url').slice(0, 12)}`;
}

export class LimitCount implements PluginInstance {
  readonly #rules: Rule[];
  readonly #windowType: WindowType;
  readonly #store: CounterStore;
  readonly #redis: RedisCounterStore | null;
  readonly #degrade: boolean;
  readonly #showHeaders: boolean;
  readonly #rejection: PluginResponse;
  readonly #logger: Logger;

  constructor(conf: JsonObject, scopeKey: string, metadata: JsonObject | undefined, logger: Logger) {
    this.#windowType = conf.window_type === 'sliding' ? 'sliding' : 'fixed';
    const target = redisTargetOf(conf);
    this.#redis = target === null ? null : new RedisCounterStore(target);
    this.#store = this.#redis ?? nodeCounters;
    const scope = counterScope(conf, scopeKey);
    const base = this.#redis === null ? `${scope}:` : `${str(conf.redis_prefix, 'plugin-limit-count')}:v1:${scope}:`;
    const headers: Headers = {
      limit: str(metadata?.limit_header, 'X-RateLimit-Limit'),
      remaining: str(metadata?.remaining_header, 'X-RateLimit-Remaining'),
      reset: str(metadata?.reset_header, 'X-RateLimit-Reset'),
    };
    if (Array.isArray(conf.rules)) {
      this.#rules = (conf.rules as JsonObject[]).map((r, i) => ({
        count: new DynamicNumber(r.count as number | string),
        window: new DynamicNumber(r.time_window as number | string),
        template: new VarTemplate(r.key as string),
        key: null,
        // Rules count apart even when their keys resolve alike (APISIX rejects duplicate key templates).
        prefix: `${base}${i}:`,
        headers: prefixed(headers, r.header_prefix === undefined ? String(i + 1) : String(r.header_prefix)),
      }));
    } else {
      this.#rules = [
        {
          count: new DynamicNumber(conf.count as number | string),
          window: new DynamicNumber(conf.time_window as number | string),
          template: null,
          key: new RequestKey((conf.key_type as KeyType | undefined) ?? 'var', str(conf.key, 'remote_addr')),
          prefix: base,
          headers,
        },
      ];
    }
    this.#degrade = conf.allow_degradation === true;
    this.#showHeaders = conf.show_limit_quota_header !== false;
    const status = (conf.rejected_code as number | undefined) ?? 503;
    this.#rejection =
      typeof conf.rejected_msg === 'string' ? { status, body: { error_msg: conf.rejected_msg } } : { status };
    this.#logger = logger;
  }

  // hot path
  access(ctx: HttpContext): PhaseResult | Promise<PhaseResult> {
    return this.#from(ctx, 0, false);
  }

  /** Runs the rules from `i`; synchronous while the store answers synchronously. */
  #from(ctx: HttpContext, i: number, matched: boolean): PhaseResult | Promise<PhaseResult> {
    const vars = ctx.vars;
    for (; i < this.#rules.length; i++) {
      const rule = this.#rules[i]!;
      let key: string;
      if (rule.key !== null) key = rule.key.resolve(vars);
      else {
        key = rule.template!.render(vars);
        // A rule keyed on variables absent from this request does not apply to it.
        if (rule.template!.resolved === 0 && rule.template!.constant === null) continue;
      }
      matched = true;
      const limit = this.#number(rule.count, vars);
      const window = this.#number(rule.window, vars);
      if (limit === null || window === null) return this.#degrade ? undefined : NO_RULES;
      let r: CounterResult | Promise<CounterResult>;
      try {
        r = this.#store.incr(rule.prefix + key, window * 1000, limit, this.#windowType);
      } catch (err) {
        return this.#failed(err);
      }
      if (r instanceof Promise) return this.#await(ctx, i, r, rule, limit);
      const res = this.#decide(ctx, r, rule, limit);
      if (res !== undefined) return res;
    }
    if (!matched) {
      this.#logger.error('failed to get rate limit rules');
      return this.#degrade ? undefined : NO_RULES;
    }
    return undefined;
  }

  async #await(ctx: HttpContext, i: number, p: Promise<CounterResult>, rule: Rule, limit: number): Promise<PhaseResult> {
    let r: CounterResult;
    try {
      r = await p;
    } catch (err) {
      return this.#failed(err);
    }
    const res = this.#decide(ctx, r, rule, limit);
    if (res !== undefined) return res;
    return this.#from(ctx, i + 1, true);
  }

  #number(n: DynamicNumber, vars: Vars): number | null {
    const v = n.resolve(vars);
    if (typeof v === 'number') return v;
    this.#logger.error({ error: v }, 'failed to get rate limit rules');
    return null;
  }

  #failed(err: unknown): PluginResponse | undefined {
    this.#logger.error({ err }, 'failed to limit count');
    return this.#degrade ? undefined : FAILED;
  }

  // hot path
  #decide(ctx: HttpContext, r: CounterResult, rule: Rule, limit: number): PluginResponse | undefined {
    if (this.#showHeaders) {
      const res = ctx.response;
      res.setHeader(rule.headers.limit, String(limit));
      res.setHeader(rule.headers.remaining, r.allowed ? String(Math.max(0, limit - r.count)) : '0');
      res.setHeader(rule.headers.reset, resetText(r.resetMs));
    }
    return r.allowed ? undefined : this.#rejection;
  }

  destroy(): void {
    this.#redis?.release();
  }
}
