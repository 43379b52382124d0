// Plugin conf validation: per-plugin schemas, `_meta` injection and semantics, consumer/metadata schemas.
import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/config/resources.ts';
import { injectMeta, validatePluginConf, validateResource } from '../../src/schema/validator.ts';
import { compileVars, deepFreeze, plugins } from './fixtures.ts';

const route = (pluginConfs: JsonObject): JsonObject => ({ uri: '/a', upstream_id: 1, plugins: pluginConfs });
const check = (v: JsonObject) => validateResource('routes', v, { plugins, withDefaults: true, compileVars });

describe('plugin confs in resources', () => {
  it('reports the first invalid plugin in APISIX words', () => {
    expect(check(route({ 'proxy-rewrite': { uri: 1 } }))).toEqual({
      ok: false,
      error:
        'failed to check the configuration of plugin proxy-rewrite err: property "uri" validation failed: wrong type: expected string, got number',
    });
    expect(check(route({ 'proxy-rewrite': { foo: 1 } }))).toEqual({
      ok: false,
      error: 'failed to check the configuration of plugin proxy-rewrite err: additional properties forbidden, found foo',
    });
  });

  it('rejects unknown plugins and non-object confs', () => {
    expect(check(route({ 'no-such': {} }))).toEqual({ ok: false, error: 'unknown plugin [no-such]' });
    expect(check(route({ prometheus: 'on' }))).toEqual({
      ok: false,
      error: 'invalid plugin conf "on" for plugin [prometheus]',
    });
  });

  it("runs the plugin's own check after its schema", () => {
    expect(check(route({ 'proxy-rewrite': { uri: '/forbidden' } }))).toEqual({
      ok: false,
      error: 'failed to check the configuration of plugin proxy-rewrite err: uri /forbidden is reserved',
    });
  });

  it('accepts every _meta field, even with additionalProperties:false plugin schemas', () => {
    const r = check(
      route({
        'proxy-rewrite': {
          uri: '/b',
          _meta: {
            disable: false,
            error_response: { message: 'nope' },
            priority: 7,
            filter: [['arg_a', '==', '1']],
            pre_function: 'return function() end',
          },
        },
        prometheus: { _meta: { error_response: 'denied' } },
      }),
    );
    expect(r.ok).toBe(true);
  });

  it('validates _meta types', () => {
    expect(check(route({ prometheus: { _meta: { priority: 'high' } } }))).toEqual({
      ok: false,
      error:
        'failed to check the configuration of plugin prometheus err: property "_meta" validation failed: property "priority" validation failed: wrong type: expected integer, got string',
    });
    expect(check(route({ prometheus: { _meta: { error_response: 1 } } }))).toMatchObject({
      ok: false,
      error: expect.stringContaining('property "error_response" validation failed: value should match only one schema'),
    });
  });

  it('compiles _meta.filter', () => {
    expect(check(route({ prometheus: { _meta: { filter: 'x' } } }))).toMatchObject({ ok: false });
    expect(check(route({ prometheus: { _meta: { filter: ['x'] } } }))).toEqual({
      ok: false,
      error: "failed to validate the 'vars' expression: rule should be wrapped inside brackets",
    });
  });

  it('tolerates schema errors of a plugin disabled through _meta', () => {
    const r = check(route({ 'limit-count': { count: 'many', _meta: { disable: true } } }));
    expect(r.ok).toBe(true);
    if (r.ok) expect((r.value.plugins as JsonObject)['limit-count']).toMatchObject({ count: 'many' });
  });

  it('uses the consumer schema for consumers and credentials, the route schema elsewhere', () => {
    const consumer = { username: 'jack', plugins: { 'key-auth': { key: 'k' } } };
    expect(validateResource('consumers', consumer, { plugins, withDefaults: true }).ok).toBe(true);
    expect(check(route({ 'key-auth': { key: 'k' } }))).toMatchObject({ ok: true });
    const onRoute = check(route({ 'key-auth': {} }));
    expect(onRoute.ok && (onRoute.value.plugins as JsonObject)['key-auth']).toEqual({
      header: 'apikey',
      hide_credentials: false,
    });
  });
});

describe('validatePluginConf', () => {
  const limitCount = plugins.get('limit-count')!;
  const httpLogger = plugins.get('http-logger')!;

  it('fills defaults on a clone only when asked', () => {
    const conf = deepFreeze({ count: 1, time_window: 1 });
    const withDefaults = validatePluginConf(limitCount, 'limit-count', conf, 'route', true);
    expect(withDefaults).toEqual({
      ok: true,
      value: { count: 1, time_window: 1, key: 'remote_addr', rejected_code: 503, policy: 'local' },
    });
    expect(validatePluginConf(limitCount, 'limit-count', conf, 'route', false)).toEqual({
      ok: true,
      value: { count: 1, time_window: 1 },
    });
  });

  it('reports errors in APISIX words', () => {
    expect(validatePluginConf(limitCount, 'limit-count', { count: 1 }, 'route', true)).toEqual({
      ok: false,
      error: 'failed to check the configuration of plugin limit-count err: property "time_window" is required',
    });
    expect(validatePluginConf(limitCount, 'limit-count', [], 'route', true)).toEqual({
      ok: false,
      error: 'invalid plugin conf [] for plugin [limit-count]',
    });
  });

  it('checks metadata against the metadata schema, without _meta', () => {
    expect(validatePluginConf(httpLogger, 'http-logger', { log_format: {} }, 'metadata', true).ok).toBe(true);
    expect(validatePluginConf(httpLogger, 'http-logger', { _meta: {} }, 'metadata', true)).toEqual({
      ok: false,
      error: 'failed to check the configuration of plugin http-logger err: additional properties forbidden, found _meta',
    });
    expect(validatePluginConf(limitCount, 'limit-count', {}, 'metadata', true)).toEqual({
      ok: false,
      error: 'no metadata schema for plugin limit-count',
    });
  });
});

describe('injectMeta', () => {
  it('adds _meta without mutating the plugin schema and caches the result', () => {
    const schema = deepFreeze({ type: 'object', properties: { a: { type: 'string' } }, additionalProperties: false });
    const injected = injectMeta(schema);
    expect(Object.keys(injected.properties as JsonObject)).toEqual(['a', '_meta']);
    expect(schema.properties).toEqual({ a: { type: 'string' } });
    expect(injectMeta(schema)).toBe(injected);
    expect(injectMeta({ type: 'object' }).properties).toHaveProperty('_meta');
  });
});
