// Translates the ajv error of a failed validation into the message APISIX's Lua validator (api7/jsonschema)
// gives for the same failure, e.g. `property "uri" validation failed: wrong type: expected string, got number`.
// Needs ajv's `verbose` option (error.data / error.schema / error.parentSchema).
import type { ErrorObject } from 'ajv';

/** Lua's `%q`: the string in double quotes with `\`, `"`, newlines and NULs escaped. */
export function luaQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    if (ch === '\\' || ch === '"') out += '\\' + ch;
    else if (ch === '\n') out += '\\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\0') out += '\\0';
    else out += ch;
  }
  return out + '"';
}

/** The Lua type name of a decoded JSON value (objects and arrays are both tables). */
function luaType(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return 'table';
  return typeof v;
}

function requiredList(branches: unknown): string {
  if (!Array.isArray(branches)) return '';
  const parts: string[] = [];
  for (const b of branches) {
    if (b !== null && typeof b === 'object' && Array.isArray((b as { required?: unknown }).required)) {
      parts.push(JSON.stringify((b as { required: unknown[] }).required));
    }
  }
  return parts.length > 0 ? ': ' + parts.join(' or ') : '';
}

function num(v: unknown): string {
  return String(v);
}

function leafMessage(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'type': {
      const t = (e.parentSchema as { type?: unknown } | undefined)?.type;
      if (Array.isArray(t)) return `wrong type: expected one of ${t.join(', ')}, got ${luaType(e.data)}`;
      return `wrong type: expected ${String(p.type)}, got ${luaType(e.data)}`;
    }
    case 'required':
      return `property ${luaQuote(String(p.missingProperty))} is required`;
    case 'dependencies':
      return `property ${luaQuote(String(p.missingProperty))} is required when ${luaQuote(String(p.property))} is set`;
    case 'enum':
      return 'matches none of the enum values';
    case 'const':
      return 'failed to check const value';
    case 'pattern':
      return `failed to match pattern ${luaQuote(String(p.pattern))} with ${luaQuote(String(e.data))}`;
    case 'format':
      if (p.format === 'ipv4' || p.format === 'ipv6' || p.format === 'email') {
        const what = p.format === 'email' ? 'email address' : `${String(p.format)} address`;
        return `expect valid ${what} but got: ${String(e.data)}`;
      }
      return `expect valid ${String(p.format)} but got: ${String(e.data)}`;
    case 'minLength':
      return `string too short, expected at least ${num(p.limit)}, got ${[...String(e.data)].length}`;
    case 'maxLength':
      return `string too long, expected at most ${num(p.limit)}, got ${[...String(e.data)].length}`;
    case 'minimum':
      return `expected ${num(e.data)} to be at least ${num(p.limit)}`;
    case 'exclusiveMinimum':
      return `expected ${num(e.data)} to be greater than ${num(p.limit)}`;
    case 'maximum':
      return `expected ${num(e.data)} to be at most ${num(p.limit)}`;
    case 'exclusiveMaximum':
      return `expected ${num(e.data)} to be smaller than ${num(p.limit)}`;
    case 'multipleOf':
      return `expected ${num(e.data)} to be a multiple of ${num(p.multipleOf)}`;
    case 'minItems':
      return `expect array to have at least ${num(p.limit)} items`;
    case 'maxItems':
      return `expect array to have at most ${num(p.limit)} items`;
    case 'uniqueItems':
      // ajv reports (later, earlier) 0-based; Lua reports (earlier, later) 1-based.
      return `expected unique items but items ${Number(p.j) + 1} and ${Number(p.i) + 1} are equal`;
    case 'minProperties':
      return `expect object to have at least ${num(p.limit)} properties`;
    case 'maxProperties':
      return `expect object to have at most ${num(p.limit)} properties`;
    case 'additionalProperties':
      return `additional properties forbidden, found ${String(p.additionalProperty)}`;
    case 'anyOf':
      return 'object matches none of the required' + requiredList(e.schema);
    case 'oneOf': {
      const passing = p.passingSchemas;
      if (Array.isArray(passing) && passing.length >= 2) {
        return `value should match only one schema, but matches both schemas ${Number(passing[0]) + 1} and ${Number(passing[1]) + 1}`;
      }
      return 'value should match only one schema, but matches none';
    }
    case 'not':
      return "value wasn't supposed to match schema";
    case 'if':
      return `${String(p.failingKeyword)} clause did not match`;
    case 'false schema':
      return 'expect false always';
    default:
      return e.message ?? `failed keyword ${e.keyword}`;
  }
}

function unescapePointer(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~');
}

/**
 * Walks the schema path alongside the instance path to rebuild Lua's nesting prefixes:
 * `property "x" validation failed: `, `failed to validate item N: `, `failed to validate k (matching "p"): `,
 * `allOf N failed: ` and `failed to validate dependent schema for "x": `.
 */
function prefixes(e: ErrorObject): { text: string; leaf?: string } {
  const inst = e.instancePath === '' ? [] : e.instancePath.split('/').slice(1).map(unescapePointer);
  const sp = e.schemaPath.split('/').slice(1).map(unescapePointer);
  // The failing keyword itself is the last schema-path token.
  const end = sp.length - 1;
  let out = '';
  let seg = 0;
  for (let j = 0; j < end; j++) {
    const tok = sp[j];
    const next = sp[j + 1];
    if (tok === 'then' || tok === 'else') {
      // Lua reports a failed conditional branch without its inner reason.
      return { text: out, leaf: `${tok} clause did not match` };
    } else if (tok === 'allOf' && next !== undefined && /^\d+$/.test(next)) {
      out += `allOf ${Number(next) + 1} failed: `;
      j++;
    } else if (tok === 'dependencies' && next !== undefined) {
      out += `failed to validate dependent schema for ${luaQuote(next)}: `;
      j++;
    } else if (seg < inst.length && tok === 'properties' && next === inst[seg]) {
      out += `property ${luaQuote(inst[seg]!)} validation failed: `;
      seg++;
      j++;
    } else if (seg < inst.length && tok === 'patternProperties' && next !== undefined) {
      out += `failed to validate ${inst[seg]} (matching ${luaQuote(next)}): `;
      seg++;
      j++;
    } else if (seg < inst.length && tok === 'additionalProperties') {
      out += `failed to validate additional property ${inst[seg]}: `;
      seg++;
    } else if (seg < inst.length && tok === 'items') {
      out += `failed to validate item ${Number(inst[seg]) + 1}: `;
      seg++;
      if (next !== undefined && /^\d+$/.test(next)) j++;
    }
  }
  return { text: out };
}

/** The APISIX-style text of a failed validation (ajv collects branch errors first; the last one is the failure). */
export function formatAjvErrors(errors: readonly ErrorObject[] | null | undefined): string {
  if (!errors || errors.length === 0) return 'validation failed';
  const e = errors[errors.length - 1]!;
  const p = prefixes(e);
  return p.text + (p.leaf ?? leafMessage(e));
}
