// limit-conn (APISIX priority 1003): bounds concurrent requests (HTTP) or sessions (stream) per key.
// Per-process counters, shared across snapshots through env.scopeKey (a conf change starts fresh counters,
// like APISIX's conf_version in the key). Above `conn` and within `conn + burst` the request is delayed by
// unit_delay * floor((n - 1) / conn); above that it is rejected with `rejected_code`. unit_delay starts at
// `default_conn_delay` and, unless `only_use_default_delay`, follows the observed request latency.
import type { JsonObject } from '../../config/resources.ts';
import type { Vars } from '../../router/vars.ts';
import type { HttpContext, StreamContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    conn: { type: 'integer', exclusiveMinimum: 0 },
    burst: { type: 'integer', minimum: 0 },
    default_conn_delay: { type: 'number', exclusiveMinimum: 0 },
    only_use_default_delay: { type: 'boolean', default: false },
    key: { type: 'string' },
    key_type: { type: 'string', enum: ['var', 'var_combination'], default: 'var' },
    policy: { type: 'string', enum: ['redis', 'redis-cluster', 'local'], default: 'local' },
    redis_prefix: { type: 'string', minLength: 0, default: 'limit_conn', pattern: '^[0-9a-zA-Z|_]+$' },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
    rejected_msg: { type: 'string', minLength: 1 },
    allow_degradation: { type: 'boolean', default: false },
  },
  required: ['conn', 'burst', 'default_conn_delay', 'key'],
};

/** In-flight counts per `scopeKey \0 key`, per process. Entries are removed when they drop to zero. */
const inflight = new Map<string, number>();

/** Test/diagnostic view of the number of tracked keys. */
export function limitConnTrackedKeys(): number {
  return inflight.size;
}

type KeyPart = { readonly literal: string } | { readonly varName: string };

/** Compiles `$a-${b}` into parts (config time). */
function compileCombination(template: string): KeyPart[] {
  const parts: KeyPart[] = [];
  const re = /\$\{([\w.-]+)\}|\$([\w]+)/g;
  let last = 0;
  for (let m = re.exec(template); m !== null; m = re.exec(template)) {
    if (m.index > last) parts.push({ literal: template.slice(last, m.index) });
    parts.push({ varName: (m[1] ?? m[2])! });
    last = m.index + m[0].length;
  }
  if (last < template.length) parts.push({ literal: template.slice(last) });
  return parts;
}

function str(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  return Array.isArray(v) ? v.join(',') : String(v);
}

/** One acquired slot; stored per request/session so log releases exactly what access took. */
interface Slot {
  readonly owner: LimitConn;
  readonly key: string;
  readonly delay: number;
}

const DATA_KEY = 'limit-conn';

function sleep(seconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.round(seconds * 1000)));
}

class LimitConn implements PluginInstance {
  private readonly max: number;
  private readonly burst: number;
  private unitDelay: number;
  private readonly adaptive: boolean;
  private readonly varName: string | null;
  private readonly parts: KeyPart[] | null;
  private readonly scope: string;
  private readonly rejection: PluginResponse;

  constructor(conf: JsonObject, scope: string) {
    this.max = conf.conn as number;
    this.burst = conf.burst as number;
    this.unitDelay = conf.default_conn_delay as number;
    this.adaptive = conf.only_use_default_delay !== true;
    const key = conf.key as string;
    this.varName = conf.key_type === 'var_combination' ? null : key;
    this.parts = conf.key_type === 'var_combination' ? compileCombination(key) : null;
    this.scope = scope;
    const status = typeof conf.rejected_code === 'number' ? conf.rejected_code : 503;
    this.rejection =
      typeof conf.rejected_msg === 'string' ? { status, body: { error_msg: conf.rejected_msg } } : { status };
  }

  // hot path
  private keyOf(vars: Vars): string {
    let key: string | undefined;
    if (this.varName !== null) key = str(vars.get(this.varName));
    else {
      let out = '';
      let resolved = 0;
      for (const p of this.parts!) {
        if ('literal' in p) out += p.literal;
        else {
          const v = str(vars.get(p.varName));
          if (v !== undefined) {
            resolved++;
            out += v;
          }
        }
      }
      key = resolved === 0 ? undefined : out;
    }
    // APISIX falls back to the client address when the key is empty.
    if (key === undefined || key === '') key = str(vars.get('remote_addr')) ?? '';
    return this.scope + '\0' + key;
  }

  // hot path
  private incoming(vars: Vars, data: Map<string, unknown>): PhaseResult | Promise<PhaseResult> {
    const key = this.keyOf(vars);
    const n = (inflight.get(key) ?? 0) + 1;
    if (n > this.max + this.burst) return this.rejection;
    inflight.set(key, n);
    const delay = n > this.max ? this.unitDelay * Math.floor((n - 1) / this.max) : 0;
    let slots = data.get(DATA_KEY) as Slot[] | undefined;
    if (slots === undefined) data.set(DATA_KEY, (slots = []));
    slots.push({ owner: this, key, delay });
    return delay >= 0.001 ? sleep(delay) : undefined;
  }

  /** Releases the slots this instance took for the request/session. */
  leaving(data: Map<string, unknown>, elapsedSeconds: number): void {
    const slots = data.get(DATA_KEY) as Slot[] | undefined;
    if (slots === undefined) return;
    for (let i = slots.length - 1; i >= 0; i--) {
      const s = slots[i]!;
      if (s.owner !== this) continue;
      slots.splice(i, 1);
      const n = (inflight.get(s.key) ?? 1) - 1;
      if (n <= 0) inflight.delete(s.key);
      else inflight.set(s.key, n);
      if (this.adaptive && elapsedSeconds >= 0) {
        const latency = Math.max(0, elapsedSeconds - s.delay);
        if (latency > 0) this.unitDelay = (this.unitDelay + latency) / 2;
      }
    }
    if (slots.length === 0) data.delete(DATA_KEY);
  }

  access(ctx: HttpContext): PhaseResult | Promise<PhaseResult> {
    return this.incoming(ctx.vars, ctx.pluginData);
  }

  log(ctx: HttpContext): void {
    this.leaving(ctx.pluginData, Number(process.hrtime.bigint() - ctx.startNs) / 1e9);
  }

  preread(ctx: StreamContext): PhaseResult | Promise<PhaseResult> {
    return this.incoming(ctx.vars, ctx.pluginData);
  }

  // Stream sessions are long-lived: their duration says nothing about per-request latency.
  streamLog(ctx: StreamContext): void {
    this.leaving(ctx.pluginData, -1);
  }
}

export const limitConnPlugin: PluginDef = {
  name: 'limit-conn',
  version: '0.1',
  priority: 1003,
  schema,
  subsystems: ['http', 'stream'],
  status: 'stable',
  check(conf) {
    if (conf.policy !== undefined && conf.policy !== 'local') {
      return `policy "${String(conf.policy)}" is not supported: limit-conn counts per process (use "local")`;
    }
    return null;
  },
  create(conf, env) {
    return new LimitConn(conf, env.scopeKey);
  },
};

export default limitConnPlugin;
