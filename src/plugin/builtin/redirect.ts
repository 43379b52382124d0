// redirect (APISIX priority 900, rewrite phase): answers with a Location header.
// - http_to_https: when the request is plain HTTP (X-Forwarded-Proto when present, else the connection scheme,
//   compared case-insensitively) redirects to `https://$host[:port]$request_uri` with 301 for GET/HEAD and
//   308 otherwise; the port comes from config.yaml plugin_attr.redirect.https_port, else (APISIX get_port) from
//   a port of apisix.ssl.listen when ssl is enabled, picked at random per request; omitted when 443 or none.
// - uri: a var template; regex_uri: [pattern, replacement] applied to the `uri` variable (no match: no redirect).
// - encode_uri encodes the result like uri_safe_encode; append_query_string then adds the client's query.
// The answer has no body: the HTTP core renders its default page for the status, as nginx does.
import type { JsonObject } from '../../config/resources.ts';
import type { Vars } from '../../router/vars.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
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

const schema: JsonObject = {
  type: 'object',
  properties: {
    ret_code: { type: 'integer', minimum: 200, default: 302 },
    uri: { type: 'string', minLength: 2 },
    regex_uri: { type: 'array', minItems: 2, maxItems: 2, items: { type: 'string' } },
    http_to_https: { type: 'boolean' },
    encode_uri: { type: 'boolean', default: false },
    append_query_string: { type: 'boolean', default: false },
  },
  oneOf: [{ required: ['uri'] }, { required: ['regex_uri'] }, { required: ['http_to_https'] }],
};

export interface CompiledRedirect {
  readonly retCode: number;
  readonly httpToHttps: boolean;
  /** Candidate ports of the https URL (empty: none in the URL). */
  readonly httpsPorts: readonly number[];
  readonly uri: VarTemplate | null;
  readonly regex: { readonly re: RegExp; readonly sub: SubTemplate } | null;
  readonly encodeUri: boolean;
  readonly appendQuery: boolean;
}

/** Key of the ssl.listen ports in the attr redirectAttr derives (not a config.yaml key). */
const SSL_PORTS = 'ssl_listen_ports';

/**
 * plugin_attr.redirect as the plugin reads it: with the ports of apisix.ssl.listen (when ssl is enabled), which
 * APISIX's get_port uses when https_port is not set.
 */
export function redirectAttr(attr: Record<string, unknown> | undefined, ssl: unknown): Record<string, unknown> {
  const s = ssl !== null && typeof ssl === 'object' ? (ssl as { enable?: unknown; listen?: unknown }) : undefined;
  const listen = s !== undefined && s.enable !== false && Array.isArray(s.listen) ? (s.listen as unknown[]) : [];
  const ports: number[] = [];
  for (const e of listen) {
    const p = typeof e === 'number' ? e : e !== null && typeof e === 'object' ? (e as { port?: unknown }).port : undefined;
    if (typeof p === 'number') ports.push(p);
  }
  return { ...attr, [SSL_PORTS]: ports };
}

/** Compiles a (defaults-applied) redirect conf; throws on an invalid regex_uri. */
export function compileRedirect(conf: JsonObject, attr?: JsonObject): CompiledRedirect {
  let regex: CompiledRedirect['regex'] = null;
  if (Array.isArray(conf.regex_uri)) {
    const [pattern, replacement] = conf.regex_uri as string[];
    try {
      regex = { re: compileNgxRegex(pattern, 'jo'), sub: compileSubTemplate(replacement) };
    } catch (err) {
      throw new Error(`invalid regex_uri(${pattern}, ${replacement}): ${(err as Error).message}`);
    }
  }
  const explicit = attr?.https_port;
  const ports = typeof explicit === 'number' ? [explicit] : Array.isArray(attr?.[SSL_PORTS]) ? (attr[SSL_PORTS] as number[]) : [];
  return {
    retCode: typeof conf.ret_code === 'number' ? conf.ret_code : 302,
    httpToHttps: conf.http_to_https === true,
    httpsPorts: ports,
    uri: typeof conf.uri === 'string' ? compileVarTemplate(conf.uri) : null,
    regex,
    encodeUri: conf.encode_uri === true,
    appendQuery: conf.append_query_string === true,
  };
}

/**
 * The redirect for a request described by its variables (scheme, host, request_uri, uri, args /
 * query_string, request_method, http_x_forwarded_proto), or null when the plugin lets the request through.
 */
export function computeRedirect(c: CompiledRedirect, vars: Vars): { status: number; location: string } | null {
  if (c.httpToHttps) {
    const proto = varToString(vars.get('http_x_forwarded_proto')) || varToString(vars.get('scheme'));
    if (proto.toLowerCase() !== 'http') return null;
    const ports = c.httpsPorts;
    const n = ports.length === 0 ? 443 : ports.length === 1 ? ports[0]! : ports[(Math.random() * ports.length) | 0]!;
    // APISIX leaves the port out for 443 and for values outside 1-65535.
    const port = n === 443 || n <= 0 || n > 65535 ? '' : ':' + n;
    const method = varToString(vars.get('request_method'));
    return {
      status: method === 'GET' || method === 'HEAD' ? 301 : 308,
      location: 'https://' + varToString(vars.get('host')) + port + varToString(vars.get('request_uri')),
    };
  }
  let location: string;
  if (c.uri !== null) {
    location = renderTemplate(c.uri, vars);
  } else if (c.regex !== null) {
    const uri = varToString(vars.get('uri'));
    c.regex.re.lastIndex = 0;
    const m = c.regex.re.exec(uri);
    if (m === null) return null;
    location = uri.slice(0, m.index) + renderSub(c.regex.sub, m) + uri.slice(m.index + m[0].length);
  } else {
    return null;
  }
  if (c.encodeUri) location = uriSafeEncode(location);
  if (c.appendQuery) {
    const args = varToString(vars.get('args')) || varToString(vars.get('query_string'));
    if (args !== '') location += (location.includes('?') ? '&' : '?') + args;
  }
  return { status: c.retCode, location };
}

class Redirect implements PluginInstance {
  readonly #c: CompiledRedirect;
  constructor(c: CompiledRedirect) {
    this.#c = c;
  }

  rewrite(ctx: HttpContext): PluginResponse | undefined {
    const r = computeRedirect(this.#c, ctx.vars);
    if (r === null) return undefined;
    return { status: r.status, headers: { Location: r.location } };
  }
}

export const redirectPlugin: PluginDef = {
  name: 'redirect',
  version: '0.1',
  priority: 900,
  schema,
  subsystems: ['http'],
  status: 'stable',
  check(conf) {
    if (conf.http_to_https === true && conf.append_query_string === true) {
      return 'only one of `http_to_https` and `append_query_string` can be configured.';
    }
    try {
      compileRedirect(conf);
    } catch (err) {
      return (err as Error).message;
    }
    return null;
  },
  create(conf, env) {
    return new Redirect(compileRedirect(conf, env.attr));
  },
};

export default redirectPlugin;
