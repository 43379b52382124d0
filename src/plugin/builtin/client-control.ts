// client-control (APISIX priority 22000, rewrite phase): per-route `max_body_size` (bytes; 0 = unlimited),
// overriding the listener's client_max_body_size for this request, like APISIX's set_client_max_body_size.
// A declared Content-Length above the limit is answered 413 at once (nginx's HTML error page). For bodies
// without a length (chunked, HTTP/2) the limit is published in ctx.pluginData under CLIENT_BODY_LIMIT_KEY; the
// HTTP core reads it with requestBodyLimit() when it reads or streams the body and answers 413 past it.
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';

export const CLIENT_BODY_LIMIT_KEY = 'client-control.max_body_size';

const schema: JsonObject = {
  type: 'object',
  properties: {
    max_body_size: { type: 'integer', minimum: 0 },
  },
};

const TOO_LARGE: PluginResponse = Object.freeze({ status: 413 });

/**
 * The request body limit in bytes for this request: the client-control override when the plugin ran, else
 * `fallback` (the listener's client_max_body_size). 0 means unlimited.
 */
export function requestBodyLimit(ctx: Pick<HttpContext, 'pluginData'>, fallback: number): number {
  // hot path
  const v = ctx.pluginData.get(CLIENT_BODY_LIMIT_KEY);
  return typeof v === 'number' ? v : fallback;
}

class ClientControl implements PluginInstance {
  readonly #max: number | undefined;

  constructor(conf: JsonObject) {
    this.#max = typeof conf.max_body_size === 'number' ? conf.max_body_size : undefined;
  }

  // hot path
  rewrite(ctx: HttpContext): PluginResponse | undefined {
    const max = this.#max;
    if (max === undefined) return undefined;
    ctx.pluginData.set(CLIENT_BODY_LIMIT_KEY, max);
    if (max === 0) return undefined;
    const cl = ctx.request.headers['content-length'];
    if (typeof cl === 'string' && Number(cl) > max) return TOO_LARGE;
    return undefined;
  }
}

export const clientControlPlugin: PluginDef = {
  name: 'client-control',
  version: '0.1',
  priority: 22000,
  schema,
  subsystems: ['http'],
  status: 'stable',
  create(conf) {
    return new ClientControl(conf);
  },
};

export default clientControlPlugin;
