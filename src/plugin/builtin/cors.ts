// cors (APISIX priority 4000). rewrite: remembers the client's Origin and answers OPTIONS locally with 200
// and the CORS headers (preflight); header_filter: adds the CORS headers to every other response.
// Origin resolution (the allowed origin echoed in Access-Control-Allow-Origin, or none = no CORS headers):
// - allow_origins_by_regex, when set, replaces allow_origins: the request origin is allowed if a regex finds
//   a match in it (unanchored, as ngx.re.find);
// - otherwise allow_origins: `*` allows all (literal `*`), `**` echoes the origin (or `*` without one), a
//   comma list echoes a listed origin, a single origin must equal the request's;
// - then allow_origins_by_metadata: each key names an origins string in plugin_metadata.allow_origins,
//   resolved like allow_origins.
// Timing-Allow-Origin follows the same rules with timing_allow_origins / timing_allow_origins_by_regex.
import type { JsonObject } from '../../config/resources.ts';
import type { HeaderValue, HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { compileNgxRegex } from '../template.ts';

const ORIGINS_PATTERN = '^(\\*|\\*\\*|null|\\w+://[^,]+(,\\w+://[^,]+)*)$';
const ALL_METHODS = 'GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE';
const regexList = { type: 'array', items: { type: 'string', minLength: 1, maxLength: 4096 }, minItems: 1, uniqueItems: true };

const schema: JsonObject = {
  type: 'object',
  properties: {
    allow_origins: { type: 'string', pattern: ORIGINS_PATTERN, default: '*' },
    allow_methods: { type: 'string', default: '*' },
    allow_headers: { type: 'string', default: '*' },
    expose_headers: { type: 'string' },
    max_age: { type: 'integer', default: 5 },
    allow_credential: { type: 'boolean', default: false },
    allow_origins_by_regex: regexList,
    allow_origins_by_metadata: regexList,
    timing_allow_origins: { type: 'string', pattern: ORIGINS_PATTERN },
    timing_allow_origins_by_regex: regexList,
  },
};

const metadataSchema: JsonObject = {
  type: 'object',
  properties: {
    allow_origins: { type: 'object', additionalProperties: { type: 'string', pattern: ORIGINS_PATTERN } },
  },
};

/** One `allow_origins`-style string, compiled. */
export interface OriginRule {
  readonly value: string;
  /** The set of a comma-separated list; null for `*`, `**` or a single origin. */
  readonly list: ReadonlySet<string> | null;
}

export interface OriginPolicy {
  readonly rule: OriginRule | null;
  readonly regexes: readonly RegExp[] | null;
  readonly metadata: readonly OriginRule[];
}

export function compileOriginRule(value: string): OriginRule {
  return { value, list: value.includes(',') ? new Set(value.split(',')) : null };
}

function compileRegexes(list: unknown): RegExp[] | null {
  if (!Array.isArray(list)) return null;
  return list.map((p) => compileNgxRegex(String(p), 'jo'));
}

/** The origin an allow_origins-style rule allows for `origin`, or undefined. */
function allowedBy(rule: OriginRule, origin: string | undefined): string | undefined {
  if (rule.value === '**') return origin ?? '*';
  if (rule.value === '*') return '*';
  if (rule.list !== null) return origin !== undefined && rule.list.has(origin) ? origin : undefined;
  return origin === rule.value ? origin : undefined;
}

/** The Access-Control-Allow-Origin (or Timing-Allow-Origin) value for `origin`, or undefined for none. */
export function resolveOrigin(p: OriginPolicy, origin: string | undefined): string | undefined {
  if (p.regexes !== null) {
    if (origin !== undefined) {
      for (const re of p.regexes) {
        re.lastIndex = 0;
        if (re.test(origin)) return origin;
      }
    }
  } else if (p.rule !== null) {
    const allowed = allowedBy(p.rule, origin);
    if (allowed !== undefined) return allowed;
  }
  for (const rule of p.metadata) {
    const allowed = allowedBy(rule, origin);
    if (allowed !== undefined && (allowed === '*' || allowed === origin)) return origin ?? allowed;
  }
  return undefined;
}

export interface CompiledCors {
  readonly origins: OriginPolicy;
  readonly timing: OriginPolicy | null;
  readonly allowMethods: string;
  /** null: echo the request's Access-Control-Request-Headers (`**`). */
  readonly allowHeaders: string | null;
  readonly exposeHeaders: string | undefined;
  readonly maxAge: string;
  readonly allowCredential: boolean;
}

export function compileCors(conf: JsonObject, metadata?: JsonObject): CompiledCors {
  const metaOrigins = (metadata?.allow_origins ?? {}) as Record<string, unknown>;
  const metaRules: OriginRule[] = [];
  if (Array.isArray(conf.allow_origins_by_metadata)) {
    for (const key of conf.allow_origins_by_metadata) {
      const v = metaOrigins[String(key)];
      if (typeof v === 'string') metaRules.push(compileOriginRule(v));
    }
  }
  const timingRegexes = compileRegexes(conf.timing_allow_origins_by_regex);
  const timing =
    timingRegexes !== null || typeof conf.timing_allow_origins === 'string'
      ? {
          rule: typeof conf.timing_allow_origins === 'string' ? compileOriginRule(conf.timing_allow_origins) : null,
          regexes: timingRegexes,
          metadata: [],
        }
      : null;
  const methods = typeof conf.allow_methods === 'string' ? conf.allow_methods : '*';
  const headers = typeof conf.allow_headers === 'string' ? conf.allow_headers : '*';
  return {
    origins: {
      rule: compileOriginRule(typeof conf.allow_origins === 'string' ? conf.allow_origins : '*'),
      regexes: compileRegexes(conf.allow_origins_by_regex),
      metadata: metaRules,
    },
    timing,
    allowMethods: methods === '**' ? ALL_METHODS : methods,
    allowHeaders: headers === '**' ? null : headers,
    exposeHeaders: typeof conf.expose_headers === 'string' ? conf.expose_headers : undefined,
    maxAge: String(typeof conf.max_age === 'number' ? conf.max_age : 5),
    allowCredential: conf.allow_credential === true,
  };
}

interface HeaderSink {
  readonly headers: Readonly<Record<string, HeaderValue | undefined>>;
  setHeader(name: string, value: HeaderValue | null): void;
}

/** Collects headers for the preflight answer. */
class HeaderBag implements HeaderSink {
  readonly headers: Record<string, string> = {};
  setHeader(name: string, value: HeaderValue | null): void {
    if (value !== null) this.headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
}

function firstValue(v: HeaderValue | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function appendVary(sink: HeaderSink): void {
  const vary = sink.headers['vary'];
  if (vary === undefined || vary === '') sink.setHeader('vary', 'Origin');
  else if (Array.isArray(vary)) sink.setHeader('vary', [...vary, 'Origin']);
  else sink.setHeader('vary', vary + ', Origin');
}

/** Writes the CORS headers for `origin`; returns false (writing nothing) when the origin is not allowed. */
export function writeCorsHeaders(
  c: CompiledCors,
  origin: string | undefined,
  requestHeaders: string | undefined,
  sink: HeaderSink,
): boolean {
  if (c.timing !== null) {
    const timing = resolveOrigin(c.timing, origin);
    if (timing !== undefined) sink.setHeader('timing-allow-origin', timing);
  }
  const allowed = resolveOrigin(c.origins, origin);
  if (allowed === undefined) return false;
  sink.setHeader('access-control-allow-origin', allowed);
  if (allowed !== '*') appendVary(sink);
  sink.setHeader('access-control-allow-methods', c.allowMethods);
  sink.setHeader('access-control-max-age', c.maxAge);
  if (c.exposeHeaders !== undefined) sink.setHeader('access-control-expose-headers', c.exposeHeaders);
  const allowHeaders = c.allowHeaders ?? requestHeaders;
  if (allowHeaders !== undefined) sink.setHeader('access-control-allow-headers', allowHeaders);
  if (c.allowCredential) sink.setHeader('access-control-allow-credentials', 'true');
  return true;
}

const ORIGIN_KEY = 'cors';
/** Set when rewrite answered the preflight with the headers already in place. */
const PREFLIGHT_KEY = 'cors.preflight';

class Cors implements PluginInstance {
  readonly #c: CompiledCors;
  constructor(c: CompiledCors) {
    this.#c = c;
  }

  rewrite(ctx: HttpContext): PluginResponse | undefined {
    const headers = ctx.request.headers;
    const origin = firstValue(headers['origin']);
    if (origin !== undefined) ctx.pluginData.set(ORIGIN_KEY, origin);
    if (ctx.request.method !== 'OPTIONS') return undefined;
    ctx.pluginData.set(PREFLIGHT_KEY, true);
    const bag = new HeaderBag();
    writeCorsHeaders(this.#c, origin, firstValue(headers['access-control-request-headers']), bag);
    return { status: 200, body: '', headers: bag.headers };
  }

  header_filter(ctx: HttpContext): void {
    if (ctx.pluginData.get(PREFLIGHT_KEY) === true) return;
    const saved = ctx.pluginData.get(ORIGIN_KEY);
    const origin = typeof saved === 'string' ? saved : firstValue(ctx.request.headers['origin']);
    const acrh = firstValue(ctx.request.headers['access-control-request-headers']);
    writeCorsHeaders(this.#c, origin, acrh, ctx.response);
  }
}

export const corsPlugin: PluginDef = {
  name: 'cors',
  version: '0.1',
  priority: 4000,
  schema,
  metadataSchema,
  subsystems: ['http'],
  status: 'stable',
  check(conf, schemaType) {
    if (schemaType !== 'route') return null;
    if (conf.allow_credential === true) {
      for (const k of ['allow_origins', 'allow_methods', 'allow_headers', 'expose_headers']) {
        if (conf[k] === '*') return "you can not set '*' for other option when 'allow_credential' is true";
      }
    }
    try {
      compileRegexes(conf.allow_origins_by_regex);
      compileRegexes(conf.timing_allow_origins_by_regex);
    } catch (err) {
      return (err as Error).message;
    }
    return null;
  },
  create(conf, env) {
    return new Cors(compileCors(conf, env.metadata));
  },
};

export default corsPlugin;
