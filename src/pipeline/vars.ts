// APISIX variables for an HTTP request, resolved lazily from the request context.
// A fixed table of resolvers (built at module load) plus prefix families; nothing is allocated per lookup
// except the lazily parsed query string and cookie jar, once per request.
import type { VarValue } from '../router/vars.ts';
import type { RequestContext } from './context.ts';

type Resolver = (ctx: RequestContext) => VarValue;

const NAMED = new Map<string, Resolver>([
  ['uri', (c) => c.originalPath],
  // APISIX: request_uri is the decoded, normalized URI with args; the client's original is real_request_uri.
  ['request_uri', (c) => (c.request.query === '' ? c.originalPath : `${c.originalPath}?${c.request.query}`)],
  ['real_request_uri', (c) => c.rawUri],
  ['document_uri', (c) => c.originalPath],
  ['upstream_uri', (c) => c.request.path],
  ['host', (c) => c.request.host],
  ['ssl_server_name', (c) => c.tls?.servername || undefined],
  ['ssl_protocol', (c) => c.tls?.protocol],
  ['ssl_cipher', (c) => c.tls?.cipher],
  ['ssl_client_verify', (c) => c.tls?.clientVerify],
  ['ssl_client_s_dn', (c) => c.tls?.clientSubject || undefined],
  ['ssl_client_i_dn', (c) => c.tls?.clientIssuer || undefined],
  ['ssl_client_serial', (c) => c.tls?.clientSerial || undefined],
  ['https', (c) => (c.tls === null ? '' : 'on')],
  ['hostname', (c) => c.request.host],
  ['server_name', (c) => c.request.host],
  ['http_host', (c) => c.headerValue('host')],
  ['remote_addr', (c) => c.request.remoteAddr],
  ['remote_port', (c) => c.request.remotePort],
  ['realip_remote_addr', (c) => c.peerAddr],
  ['server_addr', (c) => c.request.serverAddr],
  ['server_port', (c) => c.request.serverPort],
  ['request_method', (c) => c.request.method],
  ['scheme', (c) => c.request.scheme],
  ['server_protocol', (c) => `HTTP/${c.request.httpVersion}`],
  ['query_string', (c) => c.request.query],
  ['args', (c) => c.request.query],
  ['is_args', (c) => (c.request.query === '' ? '' : '?')],
  ['content_type', (c) => c.headerValue('content-type')],
  ['content_length', (c) => c.headerValue('content-length')],
  ['request_length', (c) => c.headerValue('content-length')],
  ['route_id', (c) => c.routeId || undefined],
  ['route_name', (c) => c.routeName],
  ['matched_uri', (c) => c.matchedUri],
  ['matched_host', (c) => c.matchedHost],
  ['service_id', (c) => c.serviceId],
  ['service_name', (c) => c.serviceName],
  ['consumer_name', (c) => c.consumer?.username],
  ['consumer_group_id', (c) => c.consumer?.group_id],
  ['upstream_addr', (c) => c.upstreamAddr],
  ['balancer_ip', (c) => c.balancerIp],
  ['balancer_port', (c) => c.balancerPort],
  ['upstream_status', (c) => c.upstreamStatus],
  ['status', (c) => c.response.status],
  // Switchyard: the final gRPC status of a gRPC / gRPC-Web exchange (RequestContext.grpcStatus), for logs.
  ['grpc_status', (c) => c.grpcStatus],
  ['request_id', (c) => c.headerValue('x-request-id')],
]);

function first(v: string | string[] | undefined | null): string | undefined {
  if (v === undefined || v === null) return undefined;
  return Array.isArray(v) ? v[0] : v;
}

// hot path
export function resolveVar(ctx: RequestContext, name: string): VarValue {
  const custom = ctx.customVars;
  if (custom !== null && custom.has(name)) return custom.get(name);
  const named = NAMED.get(name);
  if (named !== undefined) return named(ctx);
  if (name.startsWith('http_')) return ctx.headerByVarName(name.slice(5));
  if (name.startsWith('arg_')) {
    const v = ctx.queryParams().getAll(name.slice(4));
    return v.length === 0 ? undefined : v.length === 1 ? v[0] : v;
  }
  if (name.startsWith('cookie_')) return ctx.cookies().get(name.slice(7));
  if (name.startsWith('uri_param_')) {
    const p = ctx.params ?? ctx.matchInput?.params ?? null;
    return p === null ? undefined : p[name.slice(10)];
  }
  if (name.startsWith('post_arg_')) return first(ctx.postArgs()?.getAll(name.slice(9)));
  return undefined;
}
