import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/config/resources.ts';
import { PLUGIN_FAILED_RESPONSE, PluginChain } from '../../src/plugin/chain.ts';
import { envFor, registryOf, stubPlugin } from './helpers.ts';

const seen: string[] = [];
const tracer = (name: string) => () => ({
  rewrite: () => {
    seen.push(name);
  },
  log: () => undefined,
});

const registry = registryOf(
  stubPlugin('a', 300, tracer('a')),
  stubPlugin('b', 200, tracer('b')),
  stubPlugin('c', 100, tracer('c')),
  stubPlugin('prom', 500, () => ({ log: () => undefined }), { runPolicy: 'prefer_route' }),
  stubPlugin('auth', 2500, () => ({ rewrite: () => undefined }), { type: 'auth' }),
  stubPlugin('boom', 50, () => {
    throw new Error('bad conf');
  }),
  stubPlugin('streamy', 10, () => ({ preread: () => undefined }), { subsystems: ['stream'] }),
);

function compile(plugins: JsonObject, errors: string[] = []): PluginChain {
  return PluginChain.compile(plugins, registry, 'http', envFor(), (n, m) => errors.push(`${n}: ${m}`));
}

describe('PluginChain.compile', () => {
  it('orders by plugin priority descending', () => {
    expect(compile({ c: {}, a: {}, b: {} }).names()).toEqual(['a', 'b', 'c']);
  });

  it('re-sorts by _meta.priority when any conf sets it (others keep their own priority)', () => {
    const chain = compile({ a: {}, b: {}, c: { _meta: { priority: 1000 } } });
    expect(chain.names()).toEqual(['c', 'a', 'b']);
    expect(compile({ a: { _meta: { priority: 150 } }, b: {}, c: {} }).names()).toEqual(['b', 'a', 'c']);
  });

  it('drops _meta.disable plugins and plugins not enabled for the subsystem', () => {
    const chain = compile({ a: { _meta: { disable: true } }, b: {}, streamy: {}, unknown: {} });
    expect(chain.names()).toEqual(['b']);
    expect(chain.has('a')).toBe(false);
  });

  it('builds per-phase arrays of implementing plugins only', () => {
    const chain = compile({ a: {}, prom: {} });
    expect(chain.rewrite.map((s) => s.name)).toEqual(['a']);
    expect(chain.log.map((s) => s.name)).toEqual(['prom', 'a']);
    expect(chain.access).toEqual([]);
  });

  it('keeps _meta.error_response and compiles _meta.filter', () => {
    const chain = compile({ a: { _meta: { error_response: { m: 1 }, filter: [['arg_x', '==', '1']] } }, b: {} });
    expect(chain.step('a')?.errorResponse).toEqual({ m: 1 });
    expect(chain.step('a')?.filter).not.toBeNull();
    expect(chain.step('b')?.filter).toBeNull();
  });

  it('replaces a plugin that fails to initialise with a fail-closed step and reports it', () => {
    const errors: string[] = [];
    const chain = compile({ boom: {}, a: {}, b: { _meta: { filter: [['x', 'bogus-op', 1]] } } }, errors);
    expect(errors).toHaveLength(2);
    errors.sort();
    expect(errors[0]).toMatch(/^b: .*invalid operator/);
    expect(errors[1]).toMatch(/^boom: .*bad conf/);
    const boom = chain.step('boom')!;
    expect(boom.instance.rewrite?.({} as never)).toBe(PLUGIN_FAILED_RESPONSE);
    expect(PLUGIN_FAILED_RESPONSE.status).toBe(500);
  });

  it('destroys owned instances only', () => {
    let destroyed = 0;
    const reg = registryOf(stubPlugin('d', 1, () => ({ rewrite: () => undefined, destroy: () => void destroyed++ })));
    const conf = {};
    const route = PluginChain.compile({ d: conf }, reg, 'http', envFor(), () => undefined);
    const same = route.withConsumer({ d: conf }, new Set(), reg, envFor(), () => undefined);
    expect(same.step('d')?.instance).toBe(route.step('d')?.instance);
    same.destroy();
    expect(destroyed).toBe(0);
    const other = route.withConsumer({ d: {} }, new Set(['d']), reg, envFor(), () => undefined);
    expect(other.step('d')?.instance).not.toBe(route.step('d')?.instance);
    other.destroy();
    route.destroy();
    expect(destroyed).toBe(2);
  });

  it('marks consumer-contributed non-auth rewrite steps', () => {
    const chain = compile({}).withConsumer({ a: {}, b: {}, auth: {} }, new Set(['b', 'auth']), registry, envFor(), () => undefined);
    expect(chain.consumerRewrite.map((s) => s.name)).toEqual(['b']);
  });
});

describe('PluginChain.compileGlobal', () => {
  it('merges rules into one chain, keeping the first of duplicated plugins', () => {
    const errors: string[] = [];
    const confA = { v: 1 };
    const chain = PluginChain.compileGlobal(
      [
        { id: '1', plugins: { a: confA, prom: {} } },
        { id: '2', plugins: { a: { v: 2 }, b: {} } },
      ],
      registry,
      'http',
      envFor(),
      (n, m) => errors.push(`${n}: ${m}`),
    );
    expect(chain.names()).toEqual(['prom', 'a', 'b']);
    expect(chain.step('a')?.conf).toBe(confA);
    expect(errors).toEqual(['a: plugin a is configured in global rules 1 and 2; using 1']);
    expect(chain.step('prom')?.preferRoute).toBe(true);
  });

  it('passes the rule id to envFor', () => {
    const owners: (string | undefined)[] = [];
    PluginChain.compileGlobal([{ id: 'g7', plugins: { a: {} } }], registry, 'http', (def, conf, owner) => {
      owners.push(owner);
      return envFor()(def, conf);
    }, () => undefined);
    expect(owners).toEqual(['g7']);
  });
});
