// JSON to and from hessian2 values for http-dubbo's `serialization: "hessian2"` mode (a Switchyard extension:
// APISIX's http-dubbo only speaks fastjson). The route's params_type_desc (JVM descriptors) types each element
// of the JSON array body; values are produced in hessian.js's typed form `{$class, $}` so the provider gets
// the Java types it declared (an int, not the long or double a bare JS number would become):
//   Z B S I J F D C          boolean, byte, short, int, long, float, double, char (one-character string)
//   Ljava/lang/Boolean; ...  the boxed types: the same, null allowed
//   Ljava/lang/String;       a string
//   Ljava/util/Map; (HashMap, LinkedHashMap, TreeMap, ConcurrentHashMap)   a JSON object
//   Ljava/util/List; (ArrayList, LinkedList, Collection, Set, HashSet)      a JSON array
//   Ljava/lang/Object;       any JSON value, as hessian.js writes it (integers as int, others as double)
//   [<type>                  a JSON array whose elements are typed by <type> (a Java array)
//   L<class>;                a JSON object, sent as an object of that class (its fields from the object's keys)
// A reference parameter also takes the explicit form {"$class": "<the declared class>", "$": <value>}. A client
// never names another Java class: hessian2 deserializes whatever class a stream names, and class choice by the
// client is the known gadget path into Java providers. So a `$class` naming anything but the declared class is
// refused, and nested JSON objects and arrays are always sent as HashMap / ArrayList (hessian.js would
// otherwise honour a nested {"$class", "$"} pair as a typed object).
// Replies are made JSON-safe: byte[] as base64, Java Map with non-string keys as objects, longs beyond 2^53 as
// the decimal strings hessian.js gives.

export type ParamKind = 'bool' | 'byte' | 'short' | 'int' | 'long' | 'float' | 'double' | 'char' | 'string' | 'map' | 'list' | 'any' | 'object' | 'array';

export interface ParamType {
  readonly kind: ParamKind;
  /** The Java class name hessian.js writes (`int`, `java.lang.Integer`, `[int`, `org.x.PoJo`). */
  readonly java: string;
  /** Primitive: null is refused. */
  readonly primitive: boolean;
  /** Arrays: the element type. */
  readonly element?: ParamType;
}

const PRIMITIVES: Record<string, ParamType> = {
  Z: { kind: 'bool', java: 'boolean', primitive: true },
  B: { kind: 'byte', java: 'byte', primitive: true },
  S: { kind: 'short', java: 'short', primitive: true },
  I: { kind: 'int', java: 'int', primitive: true },
  J: { kind: 'long', java: 'long', primitive: true },
  F: { kind: 'float', java: 'float', primitive: true },
  D: { kind: 'double', java: 'double', primitive: true },
  C: { kind: 'char', java: 'char', primitive: true },
};

const BOXED: Record<string, ParamKind> = {
  'java.lang.Boolean': 'bool',
  'java.lang.Byte': 'byte',
  'java.lang.Short': 'short',
  'java.lang.Integer': 'int',
  'java.lang.Long': 'long',
  'java.lang.Float': 'float',
  'java.lang.Double': 'double',
  'java.lang.Character': 'char',
  'java.lang.String': 'string',
  'java.lang.Object': 'any',
  'java.util.Map': 'map',
  'java.util.HashMap': 'map',
  'java.util.LinkedHashMap': 'map',
  'java.util.TreeMap': 'map',
  'java.util.concurrent.ConcurrentHashMap': 'map',
  'java.util.List': 'list',
  'java.util.ArrayList': 'list',
  'java.util.LinkedList': 'list',
  'java.util.Collection': 'list',
  'java.util.Set': 'list',
  'java.util.HashSet': 'list',
};

/** Parses a JVM parameter descriptor ("Ljava/lang/String;I[J") into types, or returns an error message. */
export function parseDescriptor(desc: string): ParamType[] | string {
  const out: ParamType[] = [];
  let i = 0;
  const one = (): ParamType | string => {
    const c = desc[i];
    if (c === undefined) return `params_type_desc ends inside a type: ${JSON.stringify(desc)}`;
    if (c === '[') {
      i++;
      const el = one();
      if (typeof el === 'string') return el;
      return { kind: 'array', java: `[${el.java}`, primitive: false, element: el };
    }
    if (c === 'L') {
      const end = desc.indexOf(';', i);
      if (end < 0 || end === i + 1) return `params_type_desc has an unterminated class at ${i}: ${JSON.stringify(desc)}`;
      const java = desc.slice(i + 1, end).replaceAll('/', '.');
      i = end + 1;
      return { kind: BOXED[java] ?? 'object', java, primitive: false };
    }
    const p = PRIMITIVES[c];
    if (p === undefined) return `params_type_desc has an unknown type '${c}' at ${i}: ${JSON.stringify(desc)}`;
    i++;
    return p;
  };
  while (i < desc.length) {
    const t = one();
    if (typeof t === 'string') return t;
    out.push(t);
  }
  return out;
}

const RANGES: Partial<Record<ParamKind, readonly [number, number]>> = {
  byte: [-128, 127],
  short: [-32768, 32767],
  int: [-2147483648, 2147483647],
  long: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function explicit(v: unknown): v is { $class: unknown; $: unknown } {
  return isPlainObject(v) && Object.hasOwn(v, '$class') && Object.hasOwn(v, '$');
}

/** A nested JSON value with every object and array typed as HashMap / ArrayList (see the head comment). */
function plain(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return { $class: 'java.util.ArrayList', $: v.map(plain) };
  // No prototype: a client key "__proto__" stays a map entry.
  const o = Object.create(null) as Record<string, unknown>;
  for (const k of Object.keys(v)) o[k] = plain((v as Record<string, unknown>)[k]);
  return { $class: 'java.util.HashMap', $: o };
}

/** The fields of an object sent as class `java`, each nested value made plain. */
function fields(java: string, v: Record<string, unknown>): unknown {
  const o = Object.create(null) as Record<string, unknown>;
  for (const k of Object.keys(v)) o[k] = plain(v[k]);
  return { $class: java, $: o };
}

type Conv = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly message: string };

const bad = (where: string, t: ParamType, v: unknown): Conv => ({
  ok: false,
  message: `${where}: expected ${t.java}, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`,
});

/** One JSON value as the hessian.js value of type `t`; `where` names it in errors ("argument 2"). */
export function toHessian(t: ParamType, v: unknown, where: string): Conv {
  if (v === null) return t.primitive ? bad(where, t, v) : { ok: true, value: null };
  if (!t.primitive && explicit(v)) {
    if (v.$class !== t.java) return { ok: false, message: `${where}: "$class" must be the declared ${t.java}` };
    v = v.$;
    if (v === null) return { ok: true, value: null };
  }
  switch (t.kind) {
    case 'bool':
      return typeof v === 'boolean' ? { ok: true, value: { $class: t.java, $: v } } : bad(where, t, v);
    case 'byte':
    case 'short':
    case 'int':
    case 'long': {
      const r = RANGES[t.kind]!;
      if (typeof v !== 'number' || !Number.isInteger(v)) return bad(where, t, v);
      if (v < r[0] || v > r[1]) return { ok: false, message: `${where}: ${v} is out of range for ${t.java}` };
      return { ok: true, value: { $class: t.java, $: v } };
    }
    case 'float':
    case 'double':
      return typeof v === 'number' ? { ok: true, value: { $class: t.java, $: v } } : bad(where, t, v);
    case 'char':
      return typeof v === 'string' && v.length === 1 ? { ok: true, value: { $class: t.java, $: v } } : bad(where, t, v);
    case 'string':
      return typeof v === 'string' ? { ok: true, value: v } : bad(where, t, v);
    case 'map':
      return isPlainObject(v) ? { ok: true, value: plain(v) } : bad(where, t, v);
    case 'list':
      return Array.isArray(v) ? { ok: true, value: plain(v) } : bad(where, t, v);
    case 'any':
      return { ok: true, value: plain(v) };
    case 'array': {
      if (!Array.isArray(v)) return bad(where, t, v);
      const el = t.element!;
      const items: unknown[] = [];
      for (let i = 0; i < v.length; i++) {
        const c = toHessian(el, v[i], `${where}[${i}]`);
        if (!c.ok) return c;
        items.push(c.value);
      }
      return { ok: true, value: { $class: t.java, $: items } };
    }
    default:
      return isPlainObject(v) ? { ok: true, value: fields(t.java, v) } : bad(where, t, v);
  }
}

export type ArgsResult = { readonly ok: true; readonly args: unknown[] } | { readonly ok: false; readonly message: string };

/**
 * The call's arguments from the request body: a JSON array (or an object, its values in order, as APISIX's
 * fastjson mode reads it) with one element per declared parameter; an empty body is no argument.
 */
export function argsFromJson(types: readonly ParamType[], body: Buffer): ArgsResult {
  let values: unknown[] = [];
  if (body.length > 0) {
    let v: unknown;
    try {
      v = JSON.parse(body.toString('utf8'));
    } catch (err) {
      return { ok: false, message: `invalid JSON request body: ${(err as Error).message}` };
    }
    if (v === null || typeof v !== 'object') return { ok: false, message: 'the request body must be a JSON array or object of arguments' };
    values = Array.isArray(v) ? v : Object.values(v);
  }
  if (values.length !== types.length) {
    return { ok: false, message: `the method takes ${types.length} argument(s) (params_type_desc), the body has ${values.length}` };
  }
  const args: unknown[] = [];
  for (let i = 0; i < types.length; i++) {
    const c = toHessian(types[i]!, values[i], `argument ${i + 1}`);
    if (!c.ok) return c;
    args.push(c.value);
  }
  return { ok: true, args };
}

function jsonSafe(this: unknown, key: string, v: unknown): unknown {
  // `this[key]` is the value before toJSON (a Buffer's toJSON would give {type, data}).
  const raw = (this as Record<string, unknown>)[key];
  if (Buffer.isBuffer(raw)) return raw.toString('base64');
  if (raw instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, val] of raw) o[typeof k === 'string' ? k : JSON.stringify(k)] = val;
    return o;
  }
  if (typeof v === 'bigint') return v.toString();
  return v;
}

/** The provider's decoded value as JSON text. */
export function jsonOf(value: unknown): string {
  return JSON.stringify(value, jsonSafe) ?? 'null';
}
