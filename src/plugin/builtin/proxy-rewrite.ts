// proxy-rewrite (APISIX priority 1008, rewrite phase): rewrites what is sent upstream.
// - `uri` (var template) wins over `regex_uri` (pattern/replacement pairs, first matching pair applies, tested
//   against the `uri` variable; its captures are also `$1`.. in header values); the result's path part is
//   encoded like APISIX's uri_safe_encode and the client's query string is appended (after `&` when the new
//   uri has its own `?`). Without uri/regex_uri the path is left as is.
// - `use_real_request_uri_unsafe` forwards the raw `real_request_uri` (falling back to `request_uri`) verbatim.
// - `host` sets the upstream Host header (request header `host`; upstream pass_host node/rewrite still wins,
//   as in APISIX), `method` the upstream method, `headers` add/remove/set request headers.
// Contract with the HTTP core: the rewritten target is ctx.request.path + ctx.request.query; the `uri`
// variable keeps the client's normalized (decoded) path, as nginx's $uri does.
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext, HttpRequestView } from '../context.ts';
import type { PluginDef, PluginInstance } from '../plugin.ts';
import { applyHeaderOps, checkHeader, compileHeaderOps, hasHeaderOps, headerEntries } from '../header-ops.ts';
import type { HeaderOps } from '../header-ops.ts';
import {
  compileNgxRegex,
  compileSubTemplate,
  compileVarTemplate,
  renderSub,
  renderTemplate,
  uriSafeEncode,
  varToString,
  type SubTemplate,
  type VarTemplate,
} from '../template.ts';

const METHODS = [
  'GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'MKCOL', 'COPY', 'MOVE', 'PROPFIND', 'LOCK', 'UNLOCK',
  'PATCH', 'TRACE',
];

const headerValue = { oneOf: [{ type: 'string' }, { type: 'number' }] };
const headerMap = { type: 'object', minProperties: 1, patternProperties: { '^[^:]+$': headerValue } };

const schema: JsonObject = {
  type: 'object',
  properties: {
    uri: { type: 'string', minLength: 1, maxLength: 4096, pattern: '^\\/.*' },
    method: { type: 'string', enum: METHODS },
    regex_uri: { type: 'array', minItems: 2, items: { type: 'string' } },
    host: { type: 'string', pattern: '^[0-9a-zA-Z-.]+(:\\d{1,5})?$' },
    headers: {
      type: 'object',
      anyOf: [
        {
          properties: {
            add: headerMap,
            set: headerMap,
            remove: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^:]+$' } },
          },
        },
        headerMap,
      ],
    },
    use_real_request_uri_unsafe: { type: 'boolean', default: false },
  },
  minProperties: 1,
};

export interface RegexPair {
  readonly re: RegExp;
  readonly sub: SubTemplate;
}

/** Compiles regex_uri's flat [pattern, replacement, ...] list. Throws with APISIX's message. */
export function compileRegexUri(list: readonly string[]): RegexPair[] {
  if (list.length % 2 !== 0) throw new Error('regex_uri must contain pattern/replacement pairs');
  const out: RegexPair[] = [];
  for (let i = 0; i < list.length; i += 2) {
    try {
      out.push({ re: compileNgxRegex(list[i], 'jo'), sub: compileSubTemplate(list[i + 1]) });
    } catch (err) {
      throw new Error(`invalid regex_uri(${list[i]}, ${list[i + 1]}): ${(err as Error).message}`);
    }
  }
  return out;
}

/** Splits a new upstream uri into the request's path and query (APISIX upstream_uri composition). */
export function applyUpstreamUri(req: HttpRequestView, uri: string, originalQuery: string): void {
  // hot path
  const q = uri.indexOf('?');
  if (q < 0) {
    req.path = uriSafeEncode(uri);
    req.query = originalQuery;
    return;
  }
  req.path = uriSafeEncode(uri.slice(0, q));
  const own = uri.slice(q + 1);
  req.query = originalQuery === '' ? own : own + '&' + originalQuery;
}

/** The first matching regex_uri pair's result and captures, or null. */
export function rewriteByRegex(
  pairs: readonly RegexPair[],
  uri: string,
): { uri: string; captures: RegExpExecArray } | null {
  for (const { re, sub } of pairs) {
    re.lastIndex = 0;
    const m = re.exec(uri);
    if (m === null) continue;
    return { uri: uri.slice(0, m.index) + renderSub(sub, m) + uri.slice(m.index + m[0].length), captures: m };
  }
  return null;
}

class ProxyRewrite implements PluginInstance {
  readonly #uri: VarTemplate | null;
  readonly #regex: readonly RegexPair[] | null;
  readonly #method: string | undefined;
  readonly #host: string | undefined;
  readonly #headers: HeaderOps | null;
  readonly #unsafe: boolean;

  constructor(conf: JsonObject) {
    this.#uri = typeof conf.uri === 'string' ? compileVarTemplate(conf.uri) : null;
    this.#regex = Array.isArray(conf.regex_uri) ? compileRegexUri(conf.regex_uri as string[]) : null;
    this.#method = typeof conf.method === 'string' ? conf.method : undefined;
    this.#host = typeof conf.host === 'string' ? conf.host : undefined;
    const ops = conf.headers === undefined ? null : compileHeaderOps(conf.headers, true);
    this.#headers = ops !== null && hasHeaderOps(ops) ? ops : null;
    this.#unsafe = conf.use_real_request_uri_unsafe === true;
  }

  rewrite(ctx: HttpContext): undefined {
    const req = ctx.request;
    const vars = ctx.vars;
    if (this.#method !== undefined) req.method = this.#method;
    if (this.#host !== undefined) req.setHeader('host', this.#host);
    let captures: RegExpExecArray | null = null;
    if (this.#unsafe) {
      const raw = varToString(vars.get('real_request_uri')) || varToString(vars.get('request_uri'));
      if (raw !== '') {
        const q = raw.indexOf('?');
        req.path = q < 0 ? raw : raw.slice(0, q);
        req.query = q < 0 ? '' : raw.slice(q + 1);
      }
    } else if (this.#uri !== null) {
      applyUpstreamUri(req, renderTemplate(this.#uri, vars), req.query);
    } else if (this.#regex !== null) {
      const hit = rewriteByRegex(this.#regex, varToString(vars.get('uri')));
      if (hit !== null) {
        captures = hit.captures;
        applyUpstreamUri(req, hit.uri, req.query);
      }
    }
    if (this.#headers !== null) applyHeaderOps(this.#headers, req, vars, captures);
    return undefined;
  }
}

export const proxyRewritePlugin: PluginDef = {
  name: 'proxy-rewrite',
  version: '0.1',
  priority: 1008,
  schema,
  subsystems: ['http'],
  status: 'stable',
  check(conf) {
    try {
      if (Array.isArray(conf.regex_uri)) compileRegexUri(conf.regex_uri as string[]);
      if (typeof conf.uri === 'string') compileVarTemplate(conf.uri);
    } catch (err) {
      return (err as Error).message;
    }
    for (const [name, value] of headerEntries(conf.headers)) {
      const msg = checkHeader(name, value);
      if (msg !== null) return msg;
    }
    return null;
  },
  create(conf) {
    return new ProxyRewrite(conf);
  },
};

export default proxyRewritePlugin;
