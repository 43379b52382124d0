import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/config/resources.ts';
import { PluginChain } from '../../src/plugin/chain.ts';
import type { PluginInstance, PluginResponse } from '../../src/plugin/plugin.ts';
import {
  runBodyFilter,
  runConsumerRewrite,
  runHeaderFilter,
  runLog,
  runPhase,
  runPreread,
} from '../../src/plugin/runner.ts';
import type { StreamContext } from '../../src/plugin/context.ts';
import { MapVars } from '../../src/router/vars.ts';
import { envFor, fakeContext, registryOf, stubPlugin, type FakeContext } from './helpers.ts';

function trace(ctx: FakeContext): string[] {
  let t = ctx.pluginData.get('trace') as string[] | undefined;
  if (!t) ctx.pluginData.set('trace', (t = []));
  return t;
}

/** A plugin whose phases record their name and obey `conf.answer` / `conf.async` / `conf.throw`. */
function scripted(name: string, priority: number, extra = {}) {
  return stubPlugin(
    name,
    priority,
    (conf: JsonObject): PluginInstance => {
      const step = (phase: string) => (ctx: FakeContext) => {
        trace(ctx).push(`${name}:${phase}`);
        if (conf.throw === phase) throw new Error('kaput');
        const answer = conf.answer as unknown as PluginResponse | undefined;
        const result = conf.answerIn === phase ? answer : undefined;
        return conf.async === phase ? Promise.resolve(result) : result;
      };
      return {
        rewrite: step('rewrite') as never,
        access: step('access') as never,
        header_filter: (ctx) => void trace(ctx as FakeContext).push(`${name}:header_filter`),
        body_filter: (_ctx, chunk, eof) => {
          if (conf.hold && !eof) return null;
          return Buffer.concat([chunk, Buffer.from(eof ? `[${name}]` : '')]);
        },
        log: (ctx) => {
          trace(ctx as FakeContext).push(`${name}:log`);
          if (conf.throw === 'log') throw new Error('log failure');
        },
        preread: (ctx) => {
          (ctx.pluginData.get('trace') as string[]).push(`${name}:preread`);
          return conf.answerIn === 'preread' ? (conf.answer as unknown as PluginResponse) : undefined;
        },
      };
    },
    { subsystems: ['http', 'stream'], ...extra },
  );
}

const registry = registryOf(
  scripted('g1', 900),
  scripted('r1', 800),
  scripted('r2', 700),
  scripted('prom', 500, { runPolicy: 'prefer_route' }),
  scripted('auth', 2500, { type: 'auth' }),
);

const compile = (plugins: JsonObject) => PluginChain.compile(plugins, registry, 'http', envFor(), () => undefined);
const global = (plugins: JsonObject) =>
  PluginChain.compileGlobal([{ id: '1', plugins }], registry, 'http', envFor(), () => undefined);

describe('runPhase', () => {
  it('runs global steps before route steps, synchronously when nothing is async', () => {
    const ctx = fakeContext();
    const out = runPhase(global({ r2: {} }), compile({ g1: {}, r1: {} }), 'rewrite', ctx);
    expect(out).toBeUndefined();
    expect(trace(ctx)).toEqual(['r2:rewrite', 'g1:rewrite', 'r1:rewrite']);
  });

  it('stops at the first local answer', () => {
    const ctx = fakeContext();
    const answer = { status: 403, body: { message: 'no' } };
    const out = runPhase(null, compile({ g1: { answerIn: 'access', answer }, r1: {} }), 'access', ctx);
    expect(out).toBe(answer);
    expect(trace(ctx)).toEqual(['g1:access']);
  });

  it('awaits only when a plugin returns a promise, then continues in order', async () => {
    const ctx = fakeContext();
    const out = runPhase(global({ g1: { async: 'rewrite' } }), compile({ r1: {}, r2: { async: 'rewrite' } }), 'rewrite', ctx);
    expect(out).toBeInstanceOf(Promise);
    expect(await out).toBeUndefined();
    expect(trace(ctx)).toEqual(['g1:rewrite', 'r1:rewrite', 'r2:rewrite']);

    const ctx2 = fakeContext();
    const answer = { status: 401, body: 'x' };
    const out2 = await runPhase(null, compile({ r1: { async: 'access', answerIn: 'access', answer }, r2: {} }), 'access', ctx2);
    expect(out2).toBe(answer);
    expect(trace(ctx2)).toEqual(['r1:access']);
  });

  it('applies _meta.filter against ctx.vars, once per request', () => {
    const route = compile({ r1: { _meta: { filter: [['arg_v', '==', '1']] } }, r2: {} });
    const yes = fakeContext({ vars: { arg_v: '1' } });
    runPhase(null, route, 'rewrite', yes);
    expect(trace(yes)).toEqual(['r1:rewrite', 'r2:rewrite']);
    const no = fakeContext({ vars: { arg_v: '2' } });
    runPhase(null, route, 'rewrite', no);
    expect(trace(no)).toEqual(['r2:rewrite']);
    // The first evaluation is cached for the rest of the request, like APISIX.
    no.vars.set('arg_v', '1');
    runPhase(null, route, 'access', no);
    runLog(null, route, no);
    expect(trace(no)).toEqual(['r2:rewrite', 'r2:access', 'r2:log']);
  });

  it('substitutes _meta.error_response for >= 400 answers only', () => {
    const deny = { status: 403, body: { message: 'real' }, headers: { 'x-a': '1' } };
    const ok = { status: 200, body: 'fine' };
    const str = compile({ r1: { answerIn: 'access', answer: deny, _meta: { error_response: 'hidden' } } });
    expect(runPhase(null, str, 'access', fakeContext())).toEqual({ status: 403, body: 'hidden', headers: { 'x-a': '1' } });
    const obj = compile({ r1: { answerIn: 'access', answer: deny, _meta: { error_response: { e: 1 } } } });
    expect((runPhase(null, obj, 'access', fakeContext()) as PluginResponse).body).toEqual({ e: 1 });
    const pass = compile({ r1: { answerIn: 'access', answer: ok, _meta: { error_response: 'hidden' } } });
    expect(runPhase(null, pass, 'access', fakeContext())).toBe(ok);
  });

  it('turns a thrown error (sync or async) into a 500 answer', async () => {
    const sync = runPhase(null, compile({ r1: { throw: 'rewrite' }, r2: {} }), 'rewrite', fakeContext()) as PluginResponse;
    expect(sync.status).toBe(500);
    const reg = registryOf(stubPlugin('rej', 1, () => ({ access: () => Promise.reject(new Error('x')) })));
    const chain = PluginChain.compile({ rej: {} }, reg, 'http', envFor(), () => undefined);
    expect(((await runPhase(null, chain, 'access', fakeContext())) as PluginResponse).status).toBe(500);
  });

  it('skips prefer_route global plugins when the route configures the same plugin', () => {
    const g = global({ prom: {}, g1: {} });
    const ctx = fakeContext();
    runLog(g, compile({ prom: {} }), ctx);
    expect(trace(ctx)).toEqual(['g1:log', 'prom:log']);
    const ctx2 = fakeContext();
    runLog(g, compile({ r1: {} }), ctx2);
    expect(trace(ctx2)).toEqual(['g1:log', 'prom:log', 'r1:log']);
  });
});

describe('runPhase without a route / consumer-only', () => {
  it('runs only the global chain when no route matched', () => {
    const ctx = fakeContext();
    expect(runPhase(global({ prom: {}, g1: {} }), null, 'rewrite', ctx)).toBeUndefined();
    runLog(global({ prom: {} }), null, ctx);
    expect(trace(ctx)).toEqual(['g1:rewrite', 'prom:rewrite', 'prom:log']);
  });

  it('consumerOnly runs the consumer-contributed rewrite steps', () => {
    const merged = compile({}).withConsumer({ r1: {}, r2: {} }, new Set(['r2']), registry, envFor(), () => undefined);
    const ctx = fakeContext();
    expect(runPhase(global({ g1: {} }), merged, 'rewrite', ctx, true)).toBeUndefined();
    expect(runPhase(null, merged, 'access', ctx, true)).toBeUndefined();
    expect(trace(ctx)).toEqual(['r2:rewrite']);
  });
});

describe('runConsumerRewrite', () => {
  it('runs rewrite only for non-auth plugins the consumer added', () => {
    const route = compile({ auth: {}, r1: {} });
    const merged = route.withConsumer({ auth: {}, r1: {}, r2: {}, g1: {} }, new Set(['auth', 'r2', 'g1']), registry, envFor(), () => undefined);
    const ctx = fakeContext();
    expect(runConsumerRewrite(merged, ctx)).toBeUndefined();
    expect(trace(ctx)).toEqual(['g1:rewrite', 'r2:rewrite']);
  });
});

describe('filters and log', () => {
  it('runs header filters global first, and never throws from log', () => {
    const ctx = fakeContext();
    runHeaderFilter(global({ r2: {} }), compile({ r1: {} }), ctx);
    expect(trace(ctx)).toEqual(['r2:header_filter', 'r1:header_filter']);
    expect(() => runLog(null, compile({ r1: { throw: 'log' }, r2: {} }), ctx)).not.toThrow();
    expect(trace(ctx).slice(-2)).toEqual(['r1:log', 'r2:log']);
  });

  it('chains body filters, holding back until eof', () => {
    const ctx = fakeContext();
    const g = global({ g1: {} });
    const route = compile({ r1: { hold: true }, r2: {} });
    expect(runBodyFilter(g, route, ctx, Buffer.from('a'), false)).toBeNull();
    expect(runBodyFilter(g, route, ctx, Buffer.from('b'), true)?.toString()).toBe('b[g1][r1][r2]');
    expect(runBodyFilter(null, compile({ r2: {} }), ctx, Buffer.from('x'), false)?.toString()).toBe('x');
  });
});

describe('runPreread', () => {
  it('runs stream preread steps and returns the closing answer', () => {
    const reg = registryOf(scripted('s1', 10), scripted('s2', 5));
    const chain = PluginChain.compile({ s1: {}, s2: { answerIn: 'preread', answer: { status: 0 } } }, reg, 'stream', envFor(), () => undefined);
    const ctx = { vars: new MapVars(), pluginData: new Map([['trace', [] as string[]]]) } as unknown as StreamContext;
    expect(runPreread(null, chain, ctx)).toEqual({ status: 0 });
    expect(ctx.pluginData.get('trace')).toEqual(['s1:preread', 's2:preread']);
  });
});
