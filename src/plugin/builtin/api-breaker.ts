// api-breaker (APISIX priority 1005; access + log): a circuit breaker keyed by request host + uri (process-wide,
// not per route, like APISIX's shared dict).
// - log: an upstream status in unhealthy.http_statuses (default [500]) increments the unhealthy count and clears
//   the healthy one; every unhealthy.failures-th failure (default 3) records the trip time. A status in
//   healthy.http_statuses (default [200]) counts a success only while unhealthy state exists; at
//   healthy.successes (default 3) all state is cleared.
// - access: while now <= tripped + min(2^floor(unhealthy / failures), max_breaker_sec) seconds, answer
//   break_response_code with break_response_body (and break_response_headers, `$var` values, sent only
//   together with a body, as in APISIX). No explicit half-open state: the first request after the window passes.
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { compileVarTemplate, renderTemplate, varToString, type VarTemplate } from '../template.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    break_response_code: { type: 'integer', minimum: 200, maximum: 599 },
    break_response_body: { type: 'string' },
    break_response_headers: {
      type: 'array',
      items: {
        type: 'object',
        properties: { key: { type: 'string', minLength: 1 }, value: { type: 'string', minLength: 1 } },
        required: ['key', 'value'],
      },
    },
    max_breaker_sec: { type: 'integer', minimum: 3, default: 300 },
    unhealthy: {
      type: 'object',
      properties: {
        http_statuses: {
          type: 'array',
          minItems: 1,
          items: { type: 'integer', minimum: 500, maximum: 599 },
          uniqueItems: true,
          default: [500],
        },
        failures: { type: 'integer', minimum: 1, default: 3 },
      },
      default: { http_statuses: [500], failures: 3 },
    },
    healthy: {
      type: 'object',
      properties: {
        http_statuses: {
          type: 'array',
          minItems: 1,
          items: { type: 'integer', minimum: 200, maximum: 499 },
          uniqueItems: true,
          default: [200],
        },
        successes: { type: 'integer', minimum: 1, default: 3 },
      },
      default: { http_statuses: [200], successes: 3 },
    },
  },
  required: ['break_response_code'],
};

interface BreakerState {
  unhealthy: number;
  healthy: number;
  /** Epoch ms of the last trip; 0 when never tripped. */
  trippedAt: number;
  /** Epoch ms after which the state may be dropped when idle. */
  expiresAt: number;
}

/** State per `host + uri`, shared by every api-breaker instance of the process (bounded). */
const states = new Map<string, BreakerState>();
const MAX_STATES = 100_000;

/** Test/diagnostic view. */
export function apiBreakerStateCount(): number {
  return states.size;
}

function evictExpired(now: number): void {
  for (const [k, s] of states) if (now > s.expiresAt) states.delete(k);
  // Still full: drop the oldest entries rather than grow without bound.
  for (const k of states.keys()) {
    if (states.size < MAX_STATES) break;
    states.delete(k);
  }
}

// hot path
function stateKey(ctx: HttpContext): string {
  return ctx.request.host + varToString(ctx.vars.get('uri'));
}

class ApiBreaker implements PluginInstance {
  readonly #code: number;
  readonly #body: string | undefined;
  readonly #headers: readonly (readonly [string, VarTemplate])[];
  readonly #maxSec: number;
  readonly #unhealthy: ReadonlySet<number>;
  readonly #failures: number;
  readonly #healthy: ReadonlySet<number>;
  readonly #successes: number;

  constructor(conf: JsonObject) {
    this.#code = conf.break_response_code as number;
    this.#body = typeof conf.break_response_body === 'string' ? conf.break_response_body : undefined;
    this.#headers = ((conf.break_response_headers as JsonObject[] | undefined) ?? []).map(
      (h) => [String(h.key).toLowerCase(), compileVarTemplate(String(h.value))] as const,
    );
    this.#maxSec = (conf.max_breaker_sec as number | undefined) ?? 300;
    const u = (conf.unhealthy as JsonObject | undefined) ?? {};
    const h = (conf.healthy as JsonObject | undefined) ?? {};
    this.#unhealthy = new Set((u.http_statuses as number[] | undefined) ?? [500]);
    this.#failures = (u.failures as number | undefined) ?? 3;
    this.#healthy = new Set((h.http_statuses as number[] | undefined) ?? [200]);
    this.#successes = (h.successes as number | undefined) ?? 3;
  }

  // hot path
  access(ctx: HttpContext): PluginResponse | undefined {
    if (states.size === 0) return undefined;
    const s = states.get(stateKey(ctx));
    if (s === undefined || s.unhealthy === 0 || s.trippedAt === 0) return undefined;
    const windowSec = Math.min(2 ** Math.floor(s.unhealthy / this.#failures), this.#maxSec);
    if (Date.now() > s.trippedAt + windowSec * 1000) return undefined;
    if (this.#body === undefined) return { status: this.#code };
    let headers: Record<string, string> | undefined;
    if (this.#headers.length > 0) {
      headers = {};
      for (const [k, t] of this.#headers) headers[k] = renderTemplate(t, ctx.vars);
    }
    return { status: this.#code, body: this.#body, headers };
  }

  log(ctx: HttpContext): void {
    const status = ctx.upstreamStatus;
    if (status === undefined) return;
    const now = Date.now();
    if (this.#unhealthy.has(status)) {
      const key = stateKey(ctx);
      let s = states.get(key);
      if (s === undefined) {
        if (states.size >= MAX_STATES) evictExpired(now);
        s = { unhealthy: 0, healthy: 0, trippedAt: 0, expiresAt: 0 };
        states.set(key, s);
      }
      s.unhealthy++;
      s.healthy = 0;
      if (s.unhealthy % this.#failures === 0) s.trippedAt = now;
      s.expiresAt = now + this.#maxSec * 1000;
      return;
    }
    if (!this.#healthy.has(status) || states.size === 0) return;
    const key = stateKey(ctx);
    const s = states.get(key);
    if (s === undefined || s.unhealthy === 0) return;
    s.healthy++;
    s.expiresAt = now + this.#maxSec * 1000;
    if (s.healthy >= this.#successes) states.delete(key);
  }
}

export const apiBreakerPlugin: PluginDef = {
  name: 'api-breaker',
  version: '0.1',
  priority: 1005,
  schema,
  subsystems: ['http'],
  status: 'stable',
  create(conf) {
    return new ApiBreaker(conf);
  },
};

export default apiBreakerPlugin;
