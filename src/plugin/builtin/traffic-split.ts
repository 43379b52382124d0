// traffic-split (APISIX priority 966; HTTP access phase, stream preread): sends matching requests to weighted
// upstreams. `rules` are tried in order; a rule applies when it has no `match` or when any `match[].vars`
// expression matches (ORed). Its `weighted_upstreams` are picked by smooth weighted round robin (compiled at
// config time; weight 0 never picked). The picked entry's `upstream_id` or inline `upstream` overrides the
// route's upstream through ctx.setUpstream; an entry with neither keeps the route's own upstream.
import type { JsonObject } from '../../config/resources.ts';
import { checkExpr, compileExpr, evalExpr, type CompiledExpr } from '../../router/expr.ts';
import type { Vars } from '../../router/vars.ts';
import { upstreamDef } from '../../schema/upstream.ts';
import type { HttpContext, StreamContext } from '../context.ts';
import type { PluginDef, PluginInstance } from '../plugin.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    rules: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          match: {
            type: 'array',
            items: { type: 'object', properties: { vars: { type: 'array' } } },
          },
          weighted_upstreams: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                upstream_id: { anyOf: [{ type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-_.]+$' }, { type: 'integer', minimum: 1 }] },
                upstream: upstreamDef,
                weight: { type: 'integer', minimum: 0, default: 1 },
              },
            },
            minItems: 1,
            maxItems: 20,
            default: [{ weight: 1 }],
          },
        },
      },
    },
  },
};

/** What a weighted entry selects: an upstream id, an inline upstream, or null for the route's own. */
type Target = string | JsonObject | null;

/** Smooth weighted round robin (nginx's algorithm): deterministic, evenly interleaved picks. */
export class SmoothWeighted<T> {
  readonly #items: readonly T[];
  readonly #weights: readonly number[];
  readonly #current: number[];
  readonly #total: number;

  constructor(entries: readonly { item: T; weight: number }[]) {
    const live = entries.filter((e) => e.weight > 0);
    this.#items = live.map((e) => e.item);
    this.#weights = live.map((e) => e.weight);
    this.#current = live.map(() => 0);
    this.#total = this.#weights.reduce((a, b) => a + b, 0);
  }

  get empty(): boolean {
    return this.#items.length === 0;
  }

  // hot path
  next(): T | undefined {
    const n = this.#items.length;
    if (n === 0) return undefined;
    if (n === 1) return this.#items[0];
    let best = 0;
    for (let i = 0; i < n; i++) {
      this.#current[i]! += this.#weights[i]!;
      if (this.#current[i]! > this.#current[best]!) best = i;
    }
    this.#current[best]! -= this.#total;
    return this.#items[best];
  }
}

interface Rule {
  /** null: the rule always applies. */
  readonly match: readonly CompiledExpr[] | null;
  readonly picker: SmoothWeighted<Target>;
}

function targetOf(entry: JsonObject): Target {
  const id = entry.upstream_id;
  if (typeof id === 'string' || typeof id === 'number') return String(id);
  const up = entry.upstream;
  if (up !== null && typeof up === 'object' && !Array.isArray(up)) return up;
  return null;
}

function compileRules(conf: JsonObject): Rule[] {
  const rules: Rule[] = [];
  for (const r of (conf.rules as JsonObject[] | undefined) ?? []) {
    const match = Array.isArray(r.match) && r.match.length > 0
      ? (r.match as JsonObject[]).map((m) => compileExpr(Array.isArray(m.vars) ? m.vars : []))
      : null;
    const ups = (r.weighted_upstreams as JsonObject[] | undefined) ?? [{ weight: 1 }];
    const entries = ups.map((u) => ({ item: targetOf(u), weight: typeof u.weight === 'number' ? u.weight : 1 }));
    rules.push({ match, picker: new SmoothWeighted(entries) });
  }
  return rules;
}

// hot path
function matches(rule: Rule, vars: Vars): boolean {
  const m = rule.match;
  if (m === null) return true;
  for (let i = 0; i < m.length; i++) if (evalExpr(m[i]!, vars)) return true;
  return false;
}

class TrafficSplit implements PluginInstance {
  readonly #rules: readonly Rule[];

  constructor(conf: JsonObject) {
    this.#rules = compileRules(conf);
  }

  // hot path
  #pick(vars: Vars): Target | undefined {
    const rules = this.#rules;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      if (!matches(rule, vars)) continue;
      return rule.picker.next();
    }
    return undefined;
  }

  access(ctx: HttpContext): undefined {
    const t = this.#pick(ctx.vars);
    if (t !== undefined && t !== null) ctx.setUpstream(t);
    return undefined;
  }

  preread(ctx: StreamContext): undefined {
    const t = this.#pick(ctx.vars);
    if (t !== undefined && t !== null) ctx.setUpstream(t);
    return undefined;
  }
}

export const trafficSplitPlugin: PluginDef = {
  name: 'traffic-split',
  version: '0.1',
  priority: 966,
  schema,
  subsystems: ['http', 'stream'],
  status: 'stable',
  check(conf) {
    for (const r of (conf.rules as JsonObject[] | undefined) ?? []) {
      for (const m of (r.match as JsonObject[] | undefined) ?? []) {
        if (m.vars === undefined) continue;
        const err = checkExpr(m.vars);
        if (err !== null) return `failed to validate the 'vars' expression: ${err}`;
      }
    }
    return null;
  },
  create(conf) {
    return new TrafficSplit(conf);
  },
};

export default trafficSplitPlugin;
