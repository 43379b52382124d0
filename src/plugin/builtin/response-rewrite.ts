// response-rewrite (APISIX priority 899; header_filter + body_filter): rewrites the response of the upstream or
// of a local answer. `vars` (an expression over ctx.vars, evaluated in header_filter, e.g. on `status`) gates
// everything. status_code replaces the status; body (base64-decoded with body_base64) replaces the body;
// headers add ("Name: value" lines) / remove / set (values are var templates; the legacy map form sets, and
// an empty value removes). filters are regex substitutions over the whole body (buffered up to
// MAX_FILTER_BODY; a larger body, or a compressed one, passes through unchanged with a warning).
// Contract with the HTTP core: header_filter also runs for local answers; replaceBody drops Content-Length.
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import { compileExpr, evalExpr, isAlwaysTrue, type CompiledExpr } from '../../router/expr.ts';
import type { HttpContext } from '../context.ts';
import { applyHeaderOps, checkHeader, compileHeaderOps, hasHeaderOps, headerEntries } from '../header-ops.ts';
import type { HeaderOps } from '../header-ops.ts';
import type { PluginDef, PluginInstance } from '../plugin.ts';
import { compileNgxRegex, compileSubTemplate, substitute, type SubTemplate } from '../template.ts';

/** Bodies larger than this are not filtered (sizes are bounded; APISIX has no limit). */
export const MAX_FILTER_BODY = 8 * 1024 * 1024;

const headerValue = { oneOf: [{ type: 'string' }, { type: 'number' }] };
const headerMap = { type: 'object', minProperties: 1, patternProperties: { '^[^:]+$': headerValue } };

const schema: JsonObject = {
  type: 'object',
  properties: {
    headers: {
      anyOf: [
        headerMap,
        {
          properties: {
            add: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^:]+:[^:]*[^/]$' } },
            set: headerMap,
            remove: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^:]+$' } },
          },
        },
      ],
    },
    body: { type: 'string' },
    body_base64: { type: 'boolean', default: false },
    status_code: { type: 'integer', minimum: 200, maximum: 598 },
    vars: { type: 'array' },
    filters: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        properties: {
          regex: { type: 'string', minLength: 1 },
          scope: { type: 'string', enum: ['once', 'global'], default: 'once' },
          replace: { type: 'string' },
          options: { type: 'string', default: 'jo' },
        },
        required: ['regex', 'replace'],
      },
    },
  },
  dependencies: {
    body: { not: { required: ['filters'] } },
    filters: { not: { required: ['body'] } },
  },
};

export interface BodyFilter {
  readonly re: RegExp;
  readonly sub: SubTemplate;
}

export function compileFilters(list: unknown): BodyFilter[] {
  if (!Array.isArray(list)) return [];
  return list.map((f: JsonObject) => {
    const options = typeof f.options === 'string' ? f.options : 'jo';
    return {
      re: compileNgxRegex(String(f.regex), options, f.scope === 'global'),
      sub: compileSubTemplate(String(f.replace)),
    };
  });
}

/** Applies the filters in order to a whole body. */
export function applyFilters(filters: readonly BodyFilter[], body: string): string {
  let out = body;
  for (const f of filters) out = substitute(out, f.re, f.sub) ?? out;
  return out;
}

function decodeBody(conf: JsonObject): Buffer | undefined {
  if (typeof conf.body !== 'string') return undefined;
  if (conf.body_base64 !== true) return Buffer.from(conf.body, 'utf8');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(conf.body) || conf.body.length % 4 !== 0) {
    throw new Error('invalid base64 content');
  }
  return Buffer.from(conf.body, 'base64');
}

/** Per-request buffering state of the body filters. */
class FilterState {
  chunks: Buffer[] = [];
  size = 0;
  passthrough = false;
}

const DATA_KEY = 'response-rewrite';

class ResponseRewrite implements PluginInstance {
  readonly #vars: CompiledExpr | null;
  readonly #status: number | undefined;
  readonly #body: Buffer | undefined;
  readonly #headers: HeaderOps | null;
  readonly #filters: readonly BodyFilter[];
  readonly #logger: Logger;

  constructor(conf: JsonObject, logger: Logger) {
    const vars = Array.isArray(conf.vars) ? compileExpr(conf.vars) : null;
    this.#vars = vars !== null && !isAlwaysTrue(vars) ? vars : null;
    this.#status = typeof conf.status_code === 'number' ? conf.status_code : undefined;
    this.#body = decodeBody(conf);
    const ops = conf.headers === undefined ? null : compileHeaderOps(conf.headers, true);
    this.#headers = ops !== null && hasHeaderOps(ops) ? ops : null;
    this.#filters = compileFilters(conf.filters);
    this.#logger = logger;
  }

  header_filter(ctx: HttpContext): void {
    if (this.#vars !== null && !evalExpr(this.#vars, ctx.vars)) return;
    const res = ctx.response;
    if (this.#status !== undefined) res.status = this.#status;
    if (this.#body !== undefined) res.replaceBody(this.#body);
    if (this.#headers !== null) applyHeaderOps(this.#headers, res, ctx.vars);
    if (this.#filters.length === 0) return;
    const encoding = res.headers['content-encoding'];
    if (encoding !== undefined && encoding !== '' && encoding !== 'identity') {
      this.#logger.warn({ route: ctx.routeId }, 'response-rewrite: filters skipped on an encoded body');
      return;
    }
    res.setHeader('content-length', null);
    ctx.pluginData.set(DATA_KEY, new FilterState());
  }

  body_filter(ctx: HttpContext, chunk: Buffer, eof: boolean): Buffer | null {
    const state = ctx.pluginData.get(DATA_KEY) as FilterState | undefined;
    if (state === undefined || state.passthrough) return chunk;
    state.size += chunk.length;
    if (state.size > MAX_FILTER_BODY) {
      state.passthrough = true;
      this.#logger.warn({ route: ctx.routeId, limit: MAX_FILTER_BODY }, 'response-rewrite: body too large to filter');
      state.chunks.push(chunk);
      const all = Buffer.concat(state.chunks);
      state.chunks = [];
      return all;
    }
    if (chunk.length > 0) state.chunks.push(chunk);
    if (!eof) return null;
    const body = Buffer.concat(state.chunks).toString('utf8');
    state.chunks = [];
    return Buffer.from(applyFilters(this.#filters, body), 'utf8');
  }
}

export const responseRewritePlugin: PluginDef = {
  name: 'response-rewrite',
  version: '0.1',
  priority: 899,
  schema,
  subsystems: ['http'],
  status: 'stable',
  check(conf) {
    try {
      if (Array.isArray(conf.vars)) compileExpr(conf.vars);
      decodeBody(conf);
      compileFilters(conf.filters);
    } catch (err) {
      return (err as Error).message;
    }
    for (const [name, value] of headerEntries(conf.headers)) {
      const msg = checkHeader(name, value);
      if (msg !== null) return msg;
    }
    return null;
  },
  create(conf, env) {
    return new ResponseRewrite(conf, env.logger);
  },
};

export default responseRewritePlugin;
