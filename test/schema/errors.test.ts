// ajv errors rendered as api7/jsonschema (APISIX) messages, and the Lua check order at the schema root.
import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/config/resources.ts';
import { compileSchema, runSchema } from '../../src/schema/compile.ts';
import { luaQuote } from '../../src/schema/errors.ts';

const run = (schema: JsonObject, data: unknown) => runSchema(compileSchema(schema), data);

describe('APISIX error messages', () => {
  it.each([
    [{ type: ['string', 'object'] }, 1, 'wrong type: expected one of string, object, got number'],
    [{ type: 'integer' }, 1.5, 'wrong type: expected integer, got number'],
    [{ type: 'string' }, null, 'wrong type: expected string, got null'],
    [{ type: 'string', maxLength: 2 }, 'abc', 'string too long, expected at most 2, got 3'],
    [{ type: 'string', minLength: 3 }, 'ab', 'string too short, expected at least 3, got 2'],
    [{ type: 'number', maximum: 5 }, 6, 'expected 6 to be at most 5'],
    [{ type: 'number', exclusiveMaximum: 5 }, 5, 'expected 5 to be smaller than 5'],
    [{ type: 'number', multipleOf: 2 }, 3, 'expected 3 to be a multiple of 2'],
    [{ type: 'array', maxItems: 1 }, [1, 2], 'expect array to have at most 1 items'],
    [{ type: 'array', uniqueItems: true }, [1, 2, 1], 'expected unique items but items 1 and 3 are equal'],
    [{ type: 'object', minProperties: 1 }, {}, 'expect object to have at least 1 properties'],
    [{ dependencies: { a: ['b'] } }, { a: 1 }, 'property "b" is required when "a" is set'],
    [{ const: 'x' }, 'y', 'failed to check const value'],
    [{ type: 'string', format: 'ipv4' }, '1.2.3', 'expect valid ipv4 address but got: 1.2.3'],
    [{ anyOf: [{ type: 'string' }, { type: 'integer' }] }, true, 'object matches none of the required'],
    [{ not: { type: 'string' } }, 'x', "value wasn't supposed to match schema"],
    [{ type: 'object', properties: { a: { type: 'array', items: [{ type: 'string' }] } } }, { a: [1] },
      'property "a" validation failed: failed to validate item 1: wrong type: expected string, got number'],
    [{ type: 'object', additionalProperties: { type: 'string' } }, { k: 1 },
      'failed to validate additional property k: wrong type: expected string, got number'],
    [{ type: 'object', properties: { 'a/b': { type: 'string' } } }, { 'a/b': 1 },
      'property "a/b" validation failed: wrong type: expected string, got number'],
    [{ allOf: [{ type: 'object' }, { required: ['x'] }] }, {}, 'allOf 2 failed: property "x" is required'],
  ] as [JsonObject, unknown, string][])('%j with %j', (schema, data, message) => {
    expect(run(schema, data)).toBe(message);
  });

  it('checks the object keywords before the root compound keywords, like the Lua validator', () => {
    const schema: JsonObject = {
      type: 'object',
      properties: { a: { type: 'string' } },
      anyOf: [{ required: ['b'] }],
    };
    expect(run(schema, { a: 1 })).toBe('property "a" validation failed: wrong type: expected string, got number');
    expect(run(schema, { a: 'x' })).toBe('object matches none of the required: ["b"]');
  });

  it('quotes like Lua %q', () => {
    expect(luaQuote('a"b\\c\nd')).toBe('"a\\"b\\\\c\\\nd"');
  });
});
