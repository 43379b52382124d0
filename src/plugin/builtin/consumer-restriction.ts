// consumer-restriction (APISIX priority 2400, access phase): allows or rejects a request by the identified
// consumer's name or group, or by the matched route or service id (`type`).
// - the value is absent (no consumer attached by an auth plugin, no service): 401
//   {"message":"The request is rejected, please check the <type> for this request"};
// - blacklisted, or not whitelisted (and not allowed by `allowed_by_methods`): `rejected_code` (403) with
//   {"message": rejected_msg} or {"message":"The <type> is forbidden."};
// - `allowed_by_methods` [{user, methods}]: the entry whose `user` equals the value limits the methods; a value
//   without an entry is allowed. It applies only to values the whitelist did not admit.
// Lists become Sets at config time.
import type { JsonObject } from '../../config/resources.ts';
import { HTTP_METHODS } from '../../schema/defs.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    type: { type: 'string', enum: ['consumer_name', 'service_id', 'route_id', 'consumer_group_id'], default: 'consumer_name' },
    blacklist: { type: 'array', minItems: 1, items: { type: 'string' } },
    whitelist: { type: 'array', minItems: 1, items: { type: 'string' } },
    allowed_by_methods: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          user: { type: 'string' },
          methods: { type: 'array', minItems: 1, items: { type: 'string', enum: HTTP_METHODS } },
        },
      },
    },
    rejected_code: { type: 'integer', minimum: 200, default: 403 },
    rejected_msg: { type: 'string' },
  },
  anyOf: [{ required: ['blacklist'] }, { required: ['whitelist'] }, { required: ['allowed_by_methods'] }],
};

type Kind = 'consumer_name' | 'service_id' | 'route_id' | 'consumer_group_id';

function valueOf(kind: Kind, ctx: HttpContext): string | undefined {
  switch (kind) {
    case 'consumer_name':
      return ctx.consumer?.username;
    case 'consumer_group_id':
      return ctx.consumer?.group_id;
    case 'route_id':
      return ctx.routeId;
    case 'service_id':
      return ctx.serviceId;
  }
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

class ConsumerRestriction implements PluginInstance {
  readonly #kind: Kind;
  readonly #blacklist: ReadonlySet<string> | undefined;
  readonly #whitelist: ReadonlySet<string> | undefined;
  /** user -> allowed methods; the first entry for a user wins, as APISIX scans in order. */
  readonly #methods: ReadonlyMap<string, ReadonlySet<string>> | undefined;
  readonly #rejected: PluginResponse;
  readonly #absent: PluginResponse;

  constructor(conf: JsonObject) {
    this.#kind = (conf.type ?? 'consumer_name') as Kind;
    const bl = strings(conf.blacklist);
    const wl = strings(conf.whitelist);
    this.#blacklist = bl.length > 0 ? new Set(bl) : undefined;
    this.#whitelist = wl.length > 0 ? new Set(wl) : undefined;
    if (Array.isArray(conf.allowed_by_methods) && conf.allowed_by_methods.length > 0) {
      const m = new Map<string, ReadonlySet<string>>();
      for (const entry of conf.allowed_by_methods as JsonObject[]) {
        const user = typeof entry.user === 'string' ? entry.user : undefined;
        // An entry without user matches a value only if APISIX compared nil == value, which never holds.
        if (user !== undefined && !m.has(user)) m.set(user, new Set(strings(entry.methods)));
      }
      this.#methods = m;
    }
    const message = typeof conf.rejected_msg === 'string' ? conf.rejected_msg : `The ${this.#kind} is forbidden.`;
    this.#rejected = { status: Number(conf.rejected_code ?? 403), body: { message } };
    this.#absent = { status: 401, body: { message: `The request is rejected, please check the ${this.#kind} for this request` } };
  }

  access(ctx: HttpContext): PluginResponse | undefined {
    const value = valueOf(this.#kind, ctx);
    if (value === undefined) return this.#absent;
    if (this.#blacklist?.has(value) === true) return this.#rejected;
    let whitelisted = false;
    let block = false;
    if (this.#whitelist !== undefined) {
      whitelisted = this.#whitelist.has(value);
      block = !whitelisted;
    }
    if (this.#methods !== undefined && !whitelisted) {
      const allowed = this.#methods.get(value);
      if (allowed !== undefined && !allowed.has(ctx.request.method)) block = true;
    }
    return block ? this.#rejected : undefined;
  }
}

export const consumerRestrictionPlugin: PluginDef = {
  name: 'consumer-restriction',
  version: '0.1',
  priority: 2400,
  schema,
  subsystems: ['http'],
  status: 'stable',
  create(conf) {
    return new ConsumerRestriction(conf);
  },
};

export default consumerRestrictionPlugin;
