// The one ajv instance and the compiled-schema cache. Every schema is compiled once (keyed by object identity)
// into an ordered list of steps that reproduces the check order of APISIX's Lua validator at the root: the
// object's own keywords (type, required, properties, ...) first, then allOf, anyOf, oneOf, if/then/else, not.
// That order decides which error is reported when several are present.
import { Ajv, type ValidateFunction } from 'ajv';
import formatsModule from 'ajv-formats';
import type { JsonObject } from '../config/resources.ts';
import { formatAjvErrors } from './errors.ts';

// ajv-formats is CommonJS: under nodenext its default import is the module object.
const addFormats = (formatsModule as unknown as { default: (a: Ajv) => Ajv }).default;

const ajv = new Ajv({
  allErrors: false,
  // Defaults are written into the validated value, which is always a private clone (see validator.ts).
  useDefaults: true,
  // Plugin schemas carry APISIX-only keywords (encrypt_fields, ...); accept and ignore them.
  strict: false,
  // error.data / schema / parentSchema are needed to rebuild APISIX's messages.
  verbose: true,
  // APISIX patterns are PCRE; non-unicode mode accepts their escapes (`\-` outside classes, ...).
  unicodeRegExp: false,
  allowUnionTypes: true,
  addUsedSchema: false,
});
addFormats(ajv);

const COMPOUND_ORDER = ['allOf', 'anyOf', 'oneOf', 'if', 'not'] as const;
const SHARED_KEYS = ['definitions', '$defs', '$schema'];

export interface CompiledSchema {
  readonly steps: readonly ValidateFunction[];
}

const cache = new WeakMap<object, CompiledSchema>();

function split(schema: JsonObject): JsonObject[] {
  const structural: JsonObject = {};
  for (const k of Object.keys(schema)) {
    if (k === 'then' || k === 'else' || (COMPOUND_ORDER as readonly string[]).includes(k)) continue;
    structural[k] = schema[k]!;
  }
  const steps: JsonObject[] = [structural];
  for (const k of COMPOUND_ORDER) {
    if (schema[k] === undefined) continue;
    const step: JsonObject = { [k]: schema[k]! };
    if (k === 'if') {
      if (schema.then !== undefined) step.then = schema.then;
      if (schema.else !== undefined) step.else = schema.else;
    }
    for (const s of SHARED_KEYS) if (schema[s] !== undefined) step[s] = schema[s]!;
    steps.push(step);
  }
  return steps;
}

/** Compiles (once per schema object) a schema. Throws on an invalid schema: that is a programming error. */
export function compileSchema(schema: JsonObject): CompiledSchema {
  let c = cache.get(schema);
  if (!c) {
    c = { steps: split(schema).map((s) => ajv.compile(s)) };
    cache.set(schema, c);
  }
  return c;
}

/** Validates `data` in place (defaults are filled in); returns null or the APISIX-style error text. */
export function runSchema(c: CompiledSchema, data: unknown): string | null {
  for (const step of c.steps) {
    if (!step(data)) return formatAjvErrors(step.errors);
  }
  return null;
}
