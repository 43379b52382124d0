// APISIX's core.response.get_response_source: "upstream" when the upstream sent response headers, "nginx"
// when the request was proxied but no upstream answer came (connect refused, timeout: the gateway's own 5xx),
// "apisix" for answers the gateway made itself (no route, a plugin rejected or answered). Read at log time by
// the prometheus http_status label and the tracers' apisix.response_source attribute.
import type { HttpContext } from '../context.ts';

export type ResponseSource = 'upstream' | 'nginx' | 'apisix';

export function responseSource(ctx: HttpContext): ResponseSource {
  if (ctx.upstreamStatus !== undefined) return 'upstream';
  return ctx.upstreamAddr !== undefined && ctx.response.status >= 500 ? 'nginx' : 'apisix';
}
