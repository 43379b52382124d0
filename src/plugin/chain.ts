// A plugin chain: the plugins of one route (or of all global rules) compiled once per snapshot. Instances are
// created here (config time); the runner only walks the per-phase arrays.
//
// Compile rules (apisix-compat 5.3, 5.4):
// - `_meta.disable: true` drops the plugin; plugins not enabled for the subsystem are dropped silently (APISIX
//   ignores them at runtime after a plugin-list reload);
// - order is plugin priority descending, re-sorted by `_meta.priority` (default: the plugin's priority) when any
//   conf sets it; ties keep plugin-priority order;
// - `_meta.filter` is compiled with compileExpr; `_meta.error_response` is kept for the runner;
// - a plugin whose `create` throws or whose `_meta.filter` does not compile is reported through onError and
//   replaced by a step that fails closed: 500 (SWY_ERR_PLUGIN_FAILED) in rewrite (HTTP) / preread (stream).
//   Dropping it instead could silently disable an authentication or restriction plugin.
import type { JsonObject } from '../config/resources.ts';
import { ERRORS } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { compileExpr, isAlwaysTrue, type CompiledExpr } from '../router/expr.ts';
import type { PluginDef, PluginEnv, PluginInstance, PluginResponse } from './plugin.ts';
import type { PluginRegistry, Subsystem } from './registry.ts';
import { hasManagerRefs, resolveSecretRefs } from './secret-refs.ts';

/** Builds the environment of one plugin instance; `ownerId` is the global rule id in compileGlobal. */
export type EnvFor = (def: PluginDef, conf: JsonObject, ownerId?: string) => PluginEnv;
export type ChainErrorSink = (name: string, msg: string) => void;

export interface ChainStep {
  readonly name: string;
  readonly def: PluginDef;
  readonly conf: JsonObject;
  readonly instance: PluginInstance;
  readonly logger: Logger;
  /** Effective priority (`_meta.priority` or the plugin's). */
  readonly priority: number;
  /** `_meta.filter`, null when absent or always true. */
  readonly filter: CompiledExpr | null;
  /** ctx.pluginData key caching this step's filter result for the request (APISIX caches it per request). */
  readonly filterKey: string;
  /** `_meta.error_response`: replaces the body of a >= 400 local answer. */
  readonly errorResponse: string | JsonObject | undefined;
  /** Global-rule step skipped for routes that configure the same plugin (`run_policy: prefer_route`). */
  readonly preferRoute: boolean;
  /** The conf came from the consumer or its consumer group. */
  readonly fromConsumer: boolean;
  /** False when the instance is borrowed from another chain (destroy() leaves it alone). */
  readonly owned: boolean;
}

export interface CompileOptions {
  /** Names contributed by the consumer / consumer group (see merge.ts consumerPluginNames). */
  readonly fromConsumer?: ReadonlySet<string>;
  /** Borrow instances from this chain for identical (===) confs instead of creating new ones. */
  readonly reuse?: PluginChain;
  /** Passed to envFor (route id, service id...). */
  readonly ownerId?: string;
}

interface Entry {
  readonly name: string;
  readonly conf: JsonObject;
  readonly ownerId: string | undefined;
}

/** The answer of a step standing in for a plugin that failed to compile. */
export const PLUGIN_FAILED_RESPONSE: PluginResponse = Object.freeze({
  status: ERRORS.SWY_ERR_PLUGIN_FAILED.status,
  body: Object.freeze({ error_msg: ERRORS.SWY_ERR_PLUGIN_FAILED.message }),
});

const failedInstance: PluginInstance = Object.freeze({
  rewrite: () => PLUGIN_FAILED_RESPONSE,
  preread: () => PLUGIN_FAILED_RESPONSE,
});

let chainSeq = 0;

function metaOf(conf: JsonObject): JsonObject | undefined {
  const meta = conf._meta;
  return meta !== null && typeof meta === 'object' && !Array.isArray(meta) ? meta : undefined;
}

function errorResponseOf(meta: JsonObject | undefined): string | JsonObject | undefined {
  const v = meta?.error_response;
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v;
  return undefined;
}

export class PluginChain {
  /** All steps in execution order. */
  readonly steps: readonly ChainStep[];
  readonly rewrite: readonly ChainStep[];
  readonly access: readonly ChainStep[];
  readonly before_proxy: readonly ChainStep[];
  readonly header_filter: readonly ChainStep[];
  readonly body_filter: readonly ChainStep[];
  /** Streaming request-body transforms (protocol-translating plugins), run after before_proxy. */
  readonly request_body_filter: readonly ChainStep[];
  readonly log: readonly ChainStep[];
  readonly preread: readonly ChainStep[];
  readonly streamLog: readonly ChainStep[];
  /** Rewrite steps of consumer-contributed, non-auth plugins (APISIX "rewrite_in_consumer"). */
  readonly consumerRewrite: readonly ChainStep[];
  readonly subsystem: Subsystem;
  /**
   * Whether a conf of the chain holds a `$secret://` reference: such a chain is rebuilt when the secrets
   * resource changes, since its instances hold the values resolved when they were created.
   */
  readonly secretRefs: boolean;
  readonly #byName: ReadonlyMap<string, ChainStep>;

  private constructor(steps: ChainStep[], subsystem: Subsystem) {
    this.steps = steps;
    this.subsystem = subsystem;
    this.secretRefs = steps.some((s) => hasManagerRefs(s.conf));
    this.rewrite = steps.filter((s) => s.instance.rewrite !== undefined);
    this.access = steps.filter((s) => s.instance.access !== undefined);
    this.before_proxy = steps.filter((s) => s.instance.before_proxy !== undefined);
    this.header_filter = steps.filter((s) => s.instance.header_filter !== undefined);
    this.body_filter = steps.filter((s) => s.instance.body_filter !== undefined);
    this.request_body_filter = steps.filter((s) => s.instance.request_body_filter !== undefined);
    this.log = steps.filter((s) => s.instance.log !== undefined);
    this.preread = steps.filter((s) => s.instance.preread !== undefined);
    this.streamLog = steps.filter((s) => s.instance.streamLog !== undefined);
    this.consumerRewrite = this.rewrite.filter((s) => s.fromConsumer && s.def.type !== 'auth');
    this.#byName = new Map(steps.map((s) => [s.name, s]));
  }

  static empty(subsystem: Subsystem = 'http'): PluginChain {
    return new PluginChain([], subsystem);
  }

  /** Compiles a route's merged plugins (`name -> conf`, defaults already applied). */
  static compile(
    plugins: JsonObject,
    registry: PluginRegistry,
    subsystem: Subsystem,
    envFor: EnvFor,
    onError: ChainErrorSink,
    options: CompileOptions = {},
  ): PluginChain {
    const entries: Entry[] = [];
    for (const name of Object.keys(plugins)) {
      const conf = plugins[name];
      if (conf === null || typeof conf !== 'object' || Array.isArray(conf)) {
        onError(name, `plugin ${name}: conf must be an object`);
        continue;
      }
      entries.push({ name, conf, ownerId: options.ownerId });
    }
    return PluginChain.#build(entries, registry, subsystem, envFor, onError, options);
  }

  /**
   * One chain for all global rules, in the given order (callers pass rules sorted by id). A plugin present in
   * several rules keeps the first rule's conf; the others are reported through onError.
   */
  static compileGlobal(
    rules: readonly { readonly id: string; readonly plugins: JsonObject }[],
    registry: PluginRegistry,
    subsystem: Subsystem,
    envFor: EnvFor,
    onError: ChainErrorSink,
  ): PluginChain {
    const seen = new Map<string, string>();
    const entries: Entry[] = [];
    for (const rule of rules) {
      for (const name of Object.keys(rule.plugins)) {
        const first = seen.get(name);
        if (first !== undefined) {
          onError(name, `plugin ${name} is configured in global rules ${first} and ${rule.id}; using ${first}`);
          continue;
        }
        const conf = rule.plugins[name];
        if (conf === null || typeof conf !== 'object' || Array.isArray(conf)) {
          onError(name, `plugin ${name}: conf must be an object`);
          continue;
        }
        seen.set(name, rule.id);
        entries.push({ name, conf, ownerId: rule.id });
      }
    }
    return PluginChain.#build(entries, registry, subsystem, envFor, onError, {});
  }

  static #build(
    entries: readonly Entry[],
    registry: PluginRegistry,
    subsystem: Subsystem,
    envFor: EnvFor,
    onError: ChainErrorSink,
    options: CompileOptions,
  ): PluginChain {
    const seq = ++chainSeq;
    const steps: ChainStep[] = [];
    let metaPriority = false;
    for (const { name, conf, ownerId } of entries) {
      const meta = metaOf(conf);
      if (meta?.disable === true) continue;
      const def = registry.get(name, subsystem);
      if (def === undefined) continue;
      if (typeof meta?.priority === 'number') metaPriority = true;
      steps.push(PluginChain.#step(seq, name, def, conf, meta, ownerId, envFor, onError, options));
    }
    steps.sort((a, b) => b.def.priority - a.def.priority);
    if (metaPriority) steps.sort((a, b) => b.priority - a.priority);
    return new PluginChain(steps, subsystem);
  }

  static #step(
    seq: number,
    name: string,
    def: PluginDef,
    conf: JsonObject,
    meta: JsonObject | undefined,
    ownerId: string | undefined,
    envFor: EnvFor,
    onError: ChainErrorSink,
    options: CompileOptions,
  ): ChainStep {
    const priority = typeof meta?.priority === 'number' ? meta.priority : def.priority;
    const base = {
      name,
      def,
      conf,
      priority,
      filterKey: `\0meta.filter#${seq}#${name}`,
      errorResponse: errorResponseOf(meta),
      preferRoute: def.runPolicy === 'prefer_route',
      fromConsumer: options.fromConsumer?.has(name) ?? false,
    };
    let filter: CompiledExpr | null = null;
    let env: PluginEnv | undefined;
    try {
      env = envFor(def, conf, ownerId);
      if (meta?.filter !== undefined) {
        const compiled = compileExpr(meta.filter);
        filter = isAlwaysTrue(compiled) ? null : compiled;
      }
      const borrowed = options.reuse?.step(name);
      if (borrowed !== undefined && borrowed.conf === conf && borrowed.owned) {
        return { ...base, filter, instance: borrowed.instance, logger: env.logger, owned: false };
      }
      return { ...base, filter, instance: def.create(resolveSecretRefs(conf, env.secrets), env), logger: env.logger, owned: true };
    } catch (err) {
      onError(name, `plugin ${name} failed to initialise: ${(err as Error).message}`);
      const logger = env?.logger;
      if (logger === undefined) throw err;
      return { ...base, filter: null, errorResponse: undefined, instance: failedInstance, logger, owned: false };
    }
  }

  /**
   * The chain of this route merged with a consumer's plugins (merge.ts mergeConsumerPlugins): instances of
   * unchanged confs are borrowed from this chain, consumer-contributed plugins are marked for
   * runConsumerRewrite. Borrowed instances stay owned by this chain: destroying the result leaves them alone.
   */
  withConsumer(
    merged: JsonObject,
    fromConsumer: ReadonlySet<string>,
    registry: PluginRegistry,
    envFor: EnvFor,
    onError: ChainErrorSink,
    ownerId?: string,
  ): PluginChain {
    return PluginChain.compile(merged, registry, this.subsystem, envFor, onError, {
      fromConsumer,
      reuse: this,
      ownerId,
    });
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  step(name: string): ChainStep | undefined {
    return this.#byName.get(name);
  }

  names(): string[] {
    return this.steps.map((s) => s.name);
  }

  /** Retires the chain: destroys the instances it created. Errors are logged, never thrown. */
  destroy(): void {
    for (const s of this.steps) {
      if (!s.owned || s.instance.destroy === undefined) continue;
      try {
        s.instance.destroy();
      } catch (err) {
        s.logger.error({ plugin: s.name, err: (err as Error).message }, 'plugin destroy failed');
      }
    }
  }
}
