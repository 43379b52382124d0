// fault-injection (APISIX priority 11000, rewrite phase): delays and/or aborts requests.
// - delay {duration (seconds, may be fractional), percentage, vars}: waits on a timer (never blocks the event
//   loop), then continues;
// - abort {http_status, body, headers, percentage, vars}: answers locally; `body` and header values may use
//   `$var` templates.
// `vars` is a list of lua-resty-expr expressions; the action applies when any of them matches (OR) and the
// percentage sample hits (APISIX draws an integer 1..100 and compares it with `percentage`).
import type { JsonObject } from '../../config/resources.ts';
import { checkExpr, compileExpr, evalExpr, type CompiledExpr } from '../../router/expr.ts';
import type { Vars } from '../../router/vars.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { compileVarTemplate, renderTemplate, type VarTemplate } from '../template.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    abort: {
      type: 'object',
      properties: {
        http_status: { type: 'integer', minimum: 200 },
        body: { type: 'string', minLength: 0 },
        headers: {
          type: 'object',
          minProperties: 1,
          patternProperties: { '^[^:]+$': { oneOf: [{ type: 'string' }, { type: 'number' }] } },
        },
        percentage: { type: 'integer', minimum: 0, maximum: 100 },
        vars: { type: 'array', maxItems: 20, items: { type: 'array' } },
      },
      required: ['http_status'],
    },
    delay: {
      type: 'object',
      properties: {
        duration: { type: 'number', minimum: 0 },
        percentage: { type: 'integer', minimum: 0, maximum: 100 },
        vars: { type: 'array', maxItems: 20, items: { type: 'array' } },
      },
      required: ['duration'],
    },
  },
  minProperties: 1,
};

/** Compiles a `vars` list (expressions ORed). Throws ExprError on an invalid expression. */
export function compileVarsList(list: unknown): CompiledExpr[] | null {
  if (!Array.isArray(list)) return null;
  return list.map((e) => compileExpr(e));
}

// hot path
export function anyMatch(list: readonly CompiledExpr[] | null, vars: Vars): boolean {
  if (list === null) return true;
  for (let i = 0; i < list.length; i++) if (evalExpr(list[i]!, vars)) return true;
  return false;
}

/** APISIX's sample: an integer drawn from 1..100 must not exceed `percentage` (absent: always). */
function sampleHit(percentage: number | undefined): boolean {
  if (percentage === undefined) return true;
  return Math.floor(Math.random() * 100) + 1 <= percentage;
}

function sleep(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms));
}

interface Abort {
  readonly status: number;
  readonly body: VarTemplate | null;
  readonly headers: readonly (readonly [string, VarTemplate])[];
  readonly percentage: number | undefined;
  readonly vars: CompiledExpr[] | null;
}

interface Delay {
  readonly ms: number;
  readonly percentage: number | undefined;
  readonly vars: CompiledExpr[] | null;
}

class FaultInjection implements PluginInstance {
  readonly #abort: Abort | null;
  readonly #delay: Delay | null;

  constructor(conf: JsonObject) {
    const a = conf.abort as JsonObject | undefined;
    this.#abort =
      a === undefined
        ? null
        : {
            status: a.http_status as number,
            body: typeof a.body === 'string' ? compileVarTemplate(a.body) : null,
            headers: Object.entries((a.headers as JsonObject | undefined) ?? {}).map(
              ([k, v]) => [k.toLowerCase(), compileVarTemplate(String(v))] as const,
            ),
            percentage: a.percentage as number | undefined,
            vars: compileVarsList(a.vars),
          };
    const d = conf.delay as JsonObject | undefined;
    this.#delay =
      d === undefined
        ? null
        : { ms: Math.round((d.duration as number) * 1000), percentage: d.percentage as number | undefined, vars: compileVarsList(d.vars) };
  }

  rewrite(ctx: HttpContext): PhaseResult | Promise<PhaseResult> {
    const d = this.#delay;
    if (d !== null && anyMatch(d.vars, ctx.vars) && sampleHit(d.percentage) && d.ms > 0) {
      return sleep(d.ms).then(() => this.#aborted(ctx));
    }
    return this.#aborted(ctx);
  }

  #aborted(ctx: HttpContext): PluginResponse | undefined {
    const a = this.#abort;
    if (a === null || !anyMatch(a.vars, ctx.vars) || !sampleHit(a.percentage)) return undefined;
    let headers: Record<string, string> | undefined;
    if (a.headers.length > 0) {
      headers = {};
      for (const [k, t] of a.headers) headers[k] = renderTemplate(t, ctx.vars);
    }
    return { status: a.status, body: a.body === null ? undefined : renderTemplate(a.body, ctx.vars), headers };
  }
}

function checkVars(conf: JsonObject | undefined): string | null {
  const list = conf?.vars;
  if (!Array.isArray(list)) return null;
  for (const e of list) {
    const err = checkExpr(e);
    if (err !== null) return `failed to create vars expression: ${err}`;
  }
  return null;
}

export const faultInjectionPlugin: PluginDef = {
  name: 'fault-injection',
  version: '0.1',
  priority: 11000,
  schema,
  subsystems: ['http'],
  status: 'stable',
  check(conf) {
    return checkVars(conf.abort as JsonObject | undefined) ?? checkVars(conf.delay as JsonObject | undefined);
  },
  create(conf) {
    return new FaultInjection(conf);
  },
};

export default faultInjectionPlugin;
