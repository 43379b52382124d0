// The phase runner: walks a global chain then a route chain for one phase (apisix-compat 5.1).
// Hot path: no closures, no allocations of its own; a phase returns synchronously unless a plugin returns a
// promise, and only then continues asynchronously.
//
// How the HTTP core drives it, per request:
//   r = runPhase(global, route.chain, 'rewrite', ctx)          -> a response ends the request
//   if ctx.consumer has plugins: chain = runtime.consumerChain(route, consumer)  (PluginChain.withConsumer on
//     mergeConsumerPlugins(route.plugins, group.plugins, consumer.plugins), cached per snapshot per
//     route + consumer); r = runConsumerRewrite(chain, ctx) (same as runPhase(null, chain, 'rewrite', ctx,
//     true)); then use `chain` instead of route.chain below
//   r = runPhase(global, chain, 'access', ctx)
//   balancer pick; r = runPhase(global, chain, 'before_proxy', ctx)
//   proxy; runHeaderFilter(global, chain, ctx); runBodyFilter(global, chain, ctx, chunk, eof) per chunk;
//   runLog(global, chain, ctx)
// For an unmatched route the core runs runPhase(global, null, 'rewrite' | 'access') before answering 404.
// Stream sessions: runPreread(global, route.chain, ctx) then runStreamLog(...) at close.
import type { JsonObject } from '../config/resources.ts';
import { evalExpr } from '../router/expr.ts';
import type { MutableVars, HttpContext, StreamContext } from './context.ts';
import { PLUGIN_FAILED_RESPONSE, type ChainStep, type PluginChain } from './chain.ts';
import type { PluginResponse } from './plugin.ts';

export type RequestPhase = 'rewrite' | 'access' | 'before_proxy';
type StepPhase = RequestPhase | 'preread';
export type PhaseOutcome = PluginResponse | undefined | Promise<PluginResponse | undefined>;

interface AnyContext {
  readonly vars: MutableVars;
  readonly pluginData: Map<string, unknown>;
}

type StepFn = (this: unknown, ctx: AnyContext) => unknown;

const NO_STEPS: readonly ChainStep[] = [];
const EMPTY_BUFFER = Buffer.alloc(0);

/** `_meta.filter`, evaluated once per request and step (APISIX caches it per request too). */
function filterPasses(step: ChainStep, ctx: AnyContext): boolean {
  // hot path
  const cached = ctx.pluginData.get(step.filterKey);
  if (cached !== undefined) return cached === true;
  const ok = evalExpr(step.filter!, ctx.vars);
  ctx.pluginData.set(step.filterKey, ok);
  return ok;
}

function skip(step: ChainStep, isGlobal: boolean, route: PluginChain | null, ctx: AnyContext): boolean {
  // hot path
  if (isGlobal && step.preferRoute && route !== null && route.has(step.name)) return true;
  return step.filter !== null && !filterPasses(step, ctx);
}

const REPLACED = new Error('answer replaced by _meta.error_response');

/**
 * A local answer, with `_meta.error_response` substituted for >= 400 statuses. Streamed answers can be >= 400
 * too (ai-proxy relays a provider's 4xx as it comes): the replaced stream is cancelled so its producer (the
 * provider's response) is released at once instead of hanging open.
 */
function finish(step: ChainStep, r: PluginResponse): PluginResponse {
  if (r.status >= 400 && step.errorResponse !== undefined) {
    if (r.stream !== undefined) r.cancel?.(REPLACED);
    return { status: r.status, headers: r.headers, body: step.errorResponse as JsonObject | string };
  }
  return r;
}

function failed(step: ChainStep, phase: string, err: unknown): PluginResponse {
  step.logger.error({ plugin: step.name, phase, err: (err as Error)?.message ?? String(err) }, 'plugin failed');
  return PLUGIN_FAILED_RESPONSE;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as { then?: unknown }).then === 'function';
}

async function resume(
  pending: PromiseLike<unknown>,
  step: ChainStep,
  first: readonly ChainStep[],
  second: readonly ChainStep[],
  route: PluginChain | null,
  phase: StepPhase,
  ctx: AnyContext,
  stage: number,
  index: number,
): Promise<PluginResponse | undefined> {
  let r: unknown;
  try {
    r = await pending;
  } catch (err) {
    return failed(step, phase, err);
  }
  if (r !== undefined && r !== null) return finish(step, r as PluginResponse);
  return runSteps(first, second, route, phase, ctx, stage, index);
}

/** Runs `first` (global steps) from (stage 0, index) then `second` (route steps). */
function runSteps(
  first: readonly ChainStep[],
  second: readonly ChainStep[],
  route: PluginChain | null,
  phase: StepPhase,
  ctx: AnyContext,
  stage: number,
  index: number,
): PhaseOutcome {
  // hot path
  let steps = stage === 0 ? first : second;
  for (;;) {
    while (index < steps.length) {
      const step = steps[index++];
      if (skip(step, stage === 0, route, ctx)) continue;
      let r: unknown;
      try {
        r = (step.instance[phase] as StepFn).call(step.instance, ctx);
      } catch (err) {
        return failed(step, phase, err);
      }
      if (r === undefined || r === null) continue;
      if (isThenable(r)) return resume(r, step, first, second, route, phase, ctx, stage, index);
      return finish(step, r as PluginResponse);
    }
    if (stage === 1) return undefined;
    stage = 1;
    index = 0;
    steps = second;
  }
}

/**
 * rewrite / access / before_proxy: global steps then route steps; the first local answer ends the phase.
 * `route` is null when no route matched (global rules only). `consumerOnly` (rewrite) runs just the
 * consumer-contributed steps of `route`, like runConsumerRewrite.
 */
export function runPhase(
  global: PluginChain | null,
  route: PluginChain | null,
  phase: RequestPhase,
  ctx: HttpContext,
  consumerOnly = false,
): PhaseOutcome {
  // hot path
  if (consumerOnly) {
    if (route === null || phase !== 'rewrite') return undefined;
    return runSteps(NO_STEPS, route.consumerRewrite, route, 'rewrite', ctx, 1, 0);
  }
  const first = global === null ? NO_STEPS : global[phase];
  return runSteps(first, route === null ? NO_STEPS : route[phase], route, phase, ctx, 0, 0);
}

/** rewrite of the plugins a consumer (or its group) added, auth plugins excepted; `chain` is the merged one. */
export function runConsumerRewrite(chain: PluginChain, ctx: HttpContext): PhaseOutcome {
  // hot path
  return runSteps(NO_STEPS, chain.consumerRewrite, chain, 'rewrite', ctx, 1, 0);
}

/** Stream preread: any answer (whatever its status) closes the session. */
export function runPreread(global: PluginChain | null, route: PluginChain | null, ctx: StreamContext): PhaseOutcome {
  // hot path
  const first = global === null ? NO_STEPS : global.preread;
  return runSteps(first, route === null ? NO_STEPS : route.preread, route, 'preread', ctx, 0, 0);
}

export function runHeaderFilter(global: PluginChain | null, route: PluginChain | null, ctx: HttpContext): void {
  // hot path
  let steps = global === null ? NO_STEPS : global.header_filter;
  for (let stage = 0; stage < 2; stage++) {
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i];
      if (skip(step, stage === 0, route, ctx)) continue;
      try {
        step.instance.header_filter!(ctx);
      } catch (err) {
        failed(step, 'header_filter', err);
      }
    }
    steps = route === null ? NO_STEPS : route.header_filter;
  }
}

/**
 * Passes a response chunk through every body_filter. A step returning null holds its input back; later steps
 * then see an empty chunk only when `eof` (so they can flush). Returns null when nothing is to be sent now.
 * A throwing step passes its input through unchanged.
 */
export function runBodyFilter(
  global: PluginChain | null,
  route: PluginChain | null,
  ctx: HttpContext,
  chunk: Buffer,
  eof: boolean,
): Buffer | null {
  // hot path
  let cur = chunk;
  let steps = global === null ? NO_STEPS : global.body_filter;
  for (let stage = 0; stage < 2; stage++) {
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i];
      if (cur.length === 0 && !eof) return null;
      if (skip(step, stage === 0, route, ctx)) continue;
      try {
        const out = step.instance.body_filter!(ctx, cur, eof);
        cur = out === null ? EMPTY_BUFFER : out;
      } catch (err) {
        failed(step, 'body_filter', err);
      }
    }
    steps = route === null ? NO_STEPS : route.body_filter;
  }
  return cur.length === 0 && !eof ? null : cur;
}

export function runLog(global: PluginChain | null, route: PluginChain | null, ctx: HttpContext): void {
  // hot path
  let steps = global === null ? NO_STEPS : global.log;
  for (let stage = 0; stage < 2; stage++) {
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i];
      if (skip(step, stage === 0, route, ctx)) continue;
      try {
        step.instance.log!(ctx);
      } catch (err) {
        failed(step, 'log', err);
      }
    }
    steps = route === null ? NO_STEPS : route.log;
  }
}

export function runStreamLog(global: PluginChain | null, route: PluginChain | null, ctx: StreamContext): void {
  // hot path
  let steps = global === null ? NO_STEPS : global.streamLog;
  for (let stage = 0; stage < 2; stage++) {
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i];
      if (skip(step, stage === 0, route, ctx)) continue;
      try {
        step.instance.streamLog!(ctx);
      } catch (err) {
        failed(step, 'log', err);
      }
    }
    steps = route === null ? NO_STEPS : route.streamLog;
  }
}
