// multi-auth (APISIX priority 2600, type auth, rewrite phase): `auth_plugins` is a list of one-entry objects
// `{<auth plugin name>: <its route conf>}`, tried in order; the first that authenticates wins (it attaches the
// consumer exactly as it would alone). When all fail: 401 {"message":"Authorization Failed"}, carrying the
// headers (e.g. WWW-Authenticate) the last failing plugin set, as APISIX's accumulated set_header would.
// Each entry is validated against the named plugin's own schema and checks (defaults applied) at config time
// and instantiated once in create(), with this route's env (consumer directory, logger).
import type { JsonObject } from '../../config/resources.ts';
import { checkPluginConfInPlace, isPlainObject } from '../../schema/plugins.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { basicAuthPlugin } from './basic-auth.ts';
import { hmacAuthPlugin } from './hmac-auth.ts';
import { jwtAuthPlugin } from './jwt-auth.ts';
import { keyAuthPlugin } from './key-auth.ts';
import { ldapAuthPlugin } from './ldap-auth.ts';

/** The auth plugins multi-auth can delegate to (APISIX accepts any plugin of type 'auth'). */
const AUTH_PLUGINS: ReadonlyMap<string, PluginDef> = new Map(
  [keyAuthPlugin, basicAuthPlugin, jwtAuthPlugin, hmacAuthPlugin, ldapAuthPlugin].map((d) => [d.name, d]),
);

const schema: JsonObject = {
  type: 'object',
  title: 'work with route or service object',
  properties: { auth_plugins: { type: 'array', minItems: 2 } },
  required: ['auth_plugins'],
};

const FAILED: PluginResponse = { status: 401, body: { message: 'Authorization Failed' } };

function luaType(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (Array.isArray(v)) return 'table';
  return typeof v === 'object' ? 'object' : typeof v;
}

/** The entries of `auth_plugins` in order, each conf validated with defaults applied; or an error message. */
function resolve(conf: JsonObject): { def: PluginDef; conf: JsonObject }[] | string {
  const out: { def: PluginDef; conf: JsonObject }[] = [];
  for (const entry of conf.auth_plugins as unknown[]) {
    if (!isPlainObject(entry)) return `auth_plugins entries must be objects, got ${luaType(entry)}`;
    for (const [name, sub] of Object.entries(entry)) {
      const def = AUTH_PLUGINS.get(name);
      if (def === undefined) return `${name} plugin did not found`;
      if (def.type !== 'auth') return `${name} plugin is not supported`;
      if (!isPlainObject(sub)) return `plugin ${name} check schema failed: wrong type: expected object, got ${luaType(sub)}`;
      const work = structuredClone(sub);
      const failure = checkPluginConfInPlace(def, name, work, 'route', undefined);
      if (failure !== null) return `plugin ${name} check schema failed: ${failure.reason}`;
      out.push({ def, conf: work });
    }
  }
  return out;
}

type Step = (ctx: HttpContext) => PluginResponse | undefined | void | Promise<PluginResponse | undefined | void>;

class MultiAuth implements PluginInstance {
  readonly #steps: readonly Step[];
  readonly #instances: readonly PluginInstance[];

  constructor(instances: PluginInstance[]) {
    this.#instances = instances;
    this.#steps = instances.map((inst) => {
      // APISIX calls each auth plugin's rewrite; an auth plugin without one (none today) never authenticates.
      const phase = inst.rewrite ?? inst.access;
      return phase === undefined ? () => FAILED : (ctx: HttpContext) => phase.call(inst, ctx);
    });
  }

  rewrite(ctx: HttpContext): PluginResponse | undefined | Promise<PluginResponse | undefined> {
    return this.#from(ctx, 0);
  }

  /** Stays synchronous until a delegate returns a promise. */
  #from(ctx: HttpContext, start: number): PluginResponse | undefined | Promise<PluginResponse | undefined> {
    let last: PluginResponse | undefined;
    for (let i = start; i < this.#steps.length; i++) {
      const r = this.#steps[i]!(ctx);
      if (r instanceof Promise) return r.then((v) => (v ? this.#next(ctx, i + 1, v) : undefined));
      if (!r) return undefined;
      last = r;
    }
    return this.#failed(last);
  }

  #next(ctx: HttpContext, i: number, last: PluginResponse): PluginResponse | undefined | Promise<PluginResponse | undefined> {
    if (i >= this.#steps.length) return this.#failed(last);
    return this.#from(ctx, i);
  }

  #failed(last: PluginResponse | undefined): PluginResponse {
    return last?.headers === undefined ? FAILED : { ...FAILED, headers: last.headers };
  }

  destroy(): void {
    for (const inst of this.#instances) inst.destroy?.();
  }
}

export const multiAuthPlugin: PluginDef = {
  name: 'multi-auth',
  version: '0.1',
  priority: 2600,
  type: 'auth',
  schema,
  subsystems: ['http'],
  status: 'stable',
  check(conf) {
    const r = resolve(conf);
    return typeof r === 'string' ? r : null;
  },
  create(conf, env) {
    const r = resolve(conf);
    if (typeof r === 'string') throw new Error(r);
    return new MultiAuth(r.map(({ def, conf: sub }) => def.create(sub, env)));
  },
};

export default multiAuthPlugin;
