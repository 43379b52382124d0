// HTTP request -> protobuf request message (APISIX grpc-transcode/util.lua get_request_table + map_message).
// Input: the JSON body for POST/PUT/PATCH with a JSON content type, else form args for POST, else the query
// args. Fields are taken by their declared proto name (the lowerCamelCase JSON name is accepted too); unknown
// keys are ignored. Values are checked against the field type; a mismatch fails the whole request (APISIX:
// 400 "failed to encode request data to protobuf"). Beyond APISIX: JSON integers past 2^53 keep every digit
// (JSON.parse source text), dotted args (`person.name=Joe`) fill nested messages, a single arg fills a
// repeated field, and "true"/"false" args are booleans (lua-protobuf takes any string as true); Duration,
// wrappers, Struct, Value and ListValue take their proto3 JSON forms (wkt.ts) beside the plain message form.
import protobuf from 'protobufjs';
import { Long } from './long.ts';
import { fieldById, parseDuration, VALUE, wktKind } from './wkt.ts';

export class EncodeError extends Error {}

/** An integer from a JSON body too large for a double, kept as its source text. */
class BigIntText {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

function reviver(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value === 'number' && Number.isInteger(value) && !Number.isSafeInteger(value) && context?.source !== undefined) {
    return new BigIntText(context.source);
  }
  return value;
}

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof BigIntText);
}

/**
 * Args (query or form) as a table: repeated names become arrays, dotted names nested tables. The tables have no
 * prototype: the keys are the client's, and `?__proto__.x=1` must name a field, not reach Object.prototype.
 */
function argsTable(params: URLSearchParams): Table {
  const out: Table = Object.create(null) as Table;
  for (const key of new Set(params.keys())) {
    const all = params.getAll(key);
    const value: unknown = all.length === 1 ? all[0] : all;
    const path = key.split('.');
    let at = out;
    for (let i = 0; i < path.length - 1; i++) {
      const seg = path[i]!;
      const next = at[seg];
      if (isTable(next)) at = next;
      else {
        const t: Table = Object.create(null) as Table;
        at[seg] = t;
        at = t;
      }
    }
    at[path[path.length - 1]!] = value;
  }
  return out;
}

export interface RequestInput {
  method: string;
  contentType: string;
  query: string;
  body: Buffer;
}

/** APISIX get_request_table: which part of the request feeds the message. */
export function requestTable(input: RequestInput): Table {
  const m = input.method;
  if (input.contentType.includes('application/json') && (m === 'POST' || m === 'PUT' || m === 'PATCH') && input.body.length > 0) {
    try {
      const data = JSON.parse(input.body.toString('utf8'), reviver) as unknown;
      if (isTable(data)) return data;
    } catch {
      // Not JSON: APISIX falls back to the args below.
    }
  }
  if (m === 'POST') return argsTable(new URLSearchParams(input.body.toString('latin1')));
  return argsTable(new URLSearchParams(input.query));
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;
// Digit counts capped at what 64 bits can need (20 decimal, 16 hex), so that BigInt never parses a long text.
const INT_TEXT = /^(?:#-?|-#?)?(?:0[xX][0-9a-fA-F]{1,16}|[0-9]{1,20})$/;

/** lua-protobuf integer forms: a number, or text `123`, `-123`, `0xabF`, `#123`, `#-0x1f`, `-#0x1f`. */
function toLong(v: unknown, unsigned: boolean, what: string): Long {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new EncodeError(`${what}: integer expected`);
    if (unsigned && v < 0) return Long.fromNumber(v, false).toUnsigned();
    return Long.fromNumber(v, unsigned);
  }
  let text: string;
  if (v instanceof BigIntText) text = v.text;
  else if (typeof v === 'string') text = v.trim();
  else throw new EncodeError(`${what}: number/string expected`);
  if (!INT_TEXT.test(text)) throw new EncodeError(`${what}: integer format error`);
  const neg = text.includes('-');
  const abs = BigInt(text.replace(/[#-]/g, ''));
  const n = neg ? -abs : abs;
  if (unsigned ? n > U64_MAX || n < I64_MIN : n > I64_MAX || n < I64_MIN) throw new EncodeError(`${what}: out of range`);
  // lua-protobuf takes negative numbers for unsigned fields as their two's complement.
  return Long.fromString((unsigned && n < 0n ? n + U64_MAX + 1n : n).toString(), unsigned, 10);
}

const INT32_KINDS: Readonly<Record<string, [number, number]>> = {
  int32: [-0x80000000, 0x7fffffff],
  sint32: [-0x80000000, 0x7fffffff],
  sfixed32: [-0x80000000, 0x7fffffff],
  uint32: [0, 0xffffffff],
  fixed32: [0, 0xffffffff],
};

function scalar(type: string, v: unknown, what: string): unknown {
  switch (type) {
    case 'string':
      if (typeof v === 'string') return v;
      if (typeof v === 'number') return String(v);
      if (v instanceof BigIntText) return v.text;
      throw new EncodeError(`${what}: string expected`);
    case 'bytes':
      // Lua strings are bytes: APISIX sends the string's own bytes.
      if (typeof v === 'string') return Buffer.from(v, 'utf8');
      throw new EncodeError(`${what}: string expected`);
    case 'bool':
      if (typeof v === 'boolean') return v;
      if (v === 'true' || v === '1' || v === 1) return true;
      if (v === 'false' || v === '0' || v === 0) return false;
      throw new EncodeError(`${what}: boolean expected`);
    case 'double':
    case 'float': {
      if (v instanceof BigIntText) return Number(v.text);
      const n = typeof v === 'string' ? (v === 'NaN' || v === 'Infinity' || v === '-Infinity' ? Number(v) : Number(v.trim() === '' ? NaN : v)) : v;
      if (typeof n !== 'number' || (Number.isNaN(n) && v !== 'NaN')) throw new EncodeError(`${what}: number expected`);
      return n;
    }
    case 'int64':
    case 'sint64':
    case 'sfixed64':
      return toLong(v, false, what);
    case 'uint64':
    case 'fixed64':
      return toLong(v, true, what);
    default: {
      const range = INT32_KINDS[type];
      if (range === undefined) throw new EncodeError(`${what}: unsupported type ${type}`);
      const n = toLong(v, false, what);
      if (n.lessThan(range[0]) || n.greaterThan(range[1])) throw new EncodeError(`${what}: out of range`);
      return n.toNumber();
    }
  }
}

function enumValue(e: protobuf.Enum, v: unknown, what: string): number {
  if (typeof v === 'string') {
    const byName = e.values[v];
    if (byName !== undefined) return byName;
  }
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^-?[0-9]+$/.test(v)) return Number(v);
  throw new EncodeError(`${what}: unknown enum value`);
}

/** The object of a google.protobuf.Struct for a JSON object. */
function structObject(type: protobuf.Type, t: Table, what: string): Record<string, unknown> {
  const fields = fieldById(type, 1);
  const valueType = fields.resolvedType as protobuf.Type;
  const m = Object.create(null) as Record<string, unknown>; // client keys
  for (const k of Object.keys(t)) m[k] = valueObject(valueType, t[k], `${what}.${k}`);
  return { [fields.name]: m };
}

function listObject(type: protobuf.Type, list: unknown[], what: string): Record<string, unknown> {
  const values = fieldById(type, 1);
  const valueType = values.resolvedType as protobuf.Type;
  return { [values.name]: list.map((x, i) => valueObject(valueType, x, `${what}[${i + 1}]`)) };
}

function oneOf(type: protobuf.Type, id: number, x: unknown): Record<string, unknown> {
  return { [fieldById(type, id).name]: x };
}

/** The object of a google.protobuf.Value for any JSON value (null is NULL_VALUE). */
function valueObject(type: protobuf.Type, v: unknown, what: string): Record<string, unknown> {
  if (v === null || v === undefined) return oneOf(type, VALUE.null, 0);
  if (typeof v === 'number') return oneOf(type, VALUE.number, v);
  if (v instanceof BigIntText) return oneOf(type, VALUE.number, Number(v.text));
  if (typeof v === 'string') return oneOf(type, VALUE.string, v);
  if (typeof v === 'boolean') return oneOf(type, VALUE.bool, v);
  if (Array.isArray(v)) return oneOf(type, VALUE.list, listObject(fieldById(type, VALUE.list).resolvedType as protobuf.Type, v, what));
  return oneOf(type, VALUE.struct, structObject(fieldById(type, VALUE.struct).resolvedType as protobuf.Type, v as Table, what));
}

/**
 * A well-known type in its proto3 JSON form (wkt.ts); undefined when `v` is the plain message form ({seconds,
 * nanos} for a Duration, {value} for a wrapper), which the caller then maps field by field.
 */
function wellKnown(type: protobuf.Type, v: unknown, what: string): unknown {
  switch (wktKind(type)) {
    case 'duration': {
      if (typeof v !== 'string') return undefined;
      const d = parseDuration(v.trim());
      if (d === null) throw new EncodeError(`${what}: duration expected`);
      return { [fieldById(type, 1).name]: d.seconds, [fieldById(type, 2).name]: d.nanos };
    }
    case 'wrapper': {
      if (isTable(v)) return undefined;
      const inner = fieldById(type, 1);
      return { [inner.name]: fieldValue(inner, v, what) };
    }
    case 'struct':
      if (!isTable(v)) throw new EncodeError(`${what}: object expected`);
      return structObject(type, v, what);
    case 'list':
      if (!Array.isArray(v)) throw new EncodeError(`${what}: array expected`);
      return listObject(type, v, what);
    case 'value':
      return valueObject(type, v, what);
    default:
      return undefined;
  }
}

function fieldValue(field: protobuf.Field, v: unknown, what: string): unknown {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) {
    const w = wellKnown(rt, v, what);
    if (w !== undefined) return w;
    if (!isTable(v)) throw new EncodeError(`${what}: table expected`);
    return message(rt, v, what);
  }
  if (rt instanceof protobuf.Enum) return enumValue(rt, v, what);
  return scalar(field.type, v, what);
}

function mapKey(keyType: string, k: string, what: string): string {
  if (keyType === 'string') return k;
  if (keyType === 'bool') {
    if (k === 'true' || k === 'false') return k;
    throw new EncodeError(`${what}: boolean key expected`);
  }
  return String(scalar(keyType, k, what));
}

function isValueField(field: protobuf.Field): boolean {
  const rt = field.resolvedType;
  return rt instanceof protobuf.Type && wktKind(rt) === 'value';
}

/** Builds the plain object protobufjs encodes for `type` from a request table. */
export function message(type: protobuf.Type, t: Table, path = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    let v = t[field.name];
    if (v === undefined && field.name !== field.jsonName) v = t[field.jsonName];
    // JSON null leaves a field unset, except a google.protobuf.Value, where it is NULL_VALUE.
    if (v === undefined || (v === null && !isValueField(field))) continue;
    const what = path === '' ? field.name : `${path}.${field.name}`;
    if (field.map) {
      if (!isTable(v)) throw new EncodeError(`${what}: table expected`);
      const keyType = (field as unknown as protobuf.MapField).keyType;
      const m = Object.create(null) as Record<string, unknown>; // client keys: "__proto__" is a map key
      for (const k of Object.keys(v)) {
        const item = v[k];
        if (item !== undefined && item !== null) m[mapKey(keyType, k, what)] = fieldValue(field, item, `${what}.${k}`);
      }
      out[field.name] = m;
    } else if (field.repeated) {
      const list = Array.isArray(v) ? v : [v];
      out[field.name] = list.map((item, i) => fieldValue(field, item, `${what}[${i + 1}]`));
    } else {
      out[field.name] = fieldValue(field, v, what);
    }
  }
  return out;
}

/** The gRPC length-prefixed frame (uncompressed) of an encoded message. */
export function frame(encoded: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + encoded.length);
  out[0] = 0;
  out.writeUInt32BE(encoded.length, 1);
  out.set(encoded, 5);
  return out;
}

/** Encodes the request message; throws EncodeError when the table does not fit the type. */
export function encodeRequest(type: protobuf.Type, table: Table): Buffer {
  const obj = message(type, table);
  let bytes: Uint8Array;
  try {
    bytes = type.encode(obj).finish();
  } catch (err) {
    throw new EncodeError((err as Error).message);
  }
  return frame(bytes);
}
