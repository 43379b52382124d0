// public-api (APISIX priority 501, access): exposes the APIs plugins register (APISIX `plugin.api()`, e.g.
// prometheus's export_uri when its export server is off) on a route of the data plane, so they get the
// route's auth and rate limits. `uri` names the API to serve; without it the request's own URI is used.
// An API that does not exist (or a method it does not serve) answers 404, as APISIX's api router.
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';

export type PublicApiHandler = (ctx: HttpContext) => PluginResponse | Promise<PluginResponse>;

/** Finds the handler of (method, uri) or returns null; consulted per request (providers read live settings). */
export type PublicApiProvider = (method: string, uri: string) => PublicApiHandler | null;

const providers: PublicApiProvider[] = [];

/** Plugins with APIs call this once at module load. */
export function registerPublicApi(provider: PublicApiProvider): void {
  providers.push(provider);
}

export function findPublicApi(method: string, uri: string): PublicApiHandler | null {
  for (const p of providers) {
    const h = p(method, uri);
    if (h !== null) return h;
  }
  return null;
}

const schema: JsonObject = {
  type: 'object',
  properties: {
    uri: { type: 'string' },
  },
};

const NOT_FOUND: PluginResponse = { status: 404 };

class PublicApi implements PluginInstance {
  readonly #uri: string | null;
  constructor(conf: JsonObject) {
    this.#uri = typeof conf.uri === 'string' ? conf.uri : null;
  }

  access(ctx: HttpContext): PhaseResult | Promise<PhaseResult> {
    const uri = this.#uri ?? String(ctx.vars.get('uri') ?? ctx.request.path);
    const h = findPublicApi(ctx.request.method, uri);
    return h === null ? NOT_FOUND : h(ctx);
  }
}

export const publicApiPlugin: PluginDef = {
  name: 'public-api',
  version: '0.1',
  priority: 501,
  schema,
  subsystems: ['http'],
  status: 'stable',
  create(conf) {
    return new PublicApi(conf);
  },
};

export default publicApiPlugin;
