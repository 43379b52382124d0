// protobuf response message -> JSON text, with lua-protobuf's pb_option semantics as APISIX applies them
// (grpc-transcode/response.lua): fields by declared name; enums by name or number; 64-bit integers as numbers,
// or (int64_as_string / int64_as_hexstring) as numbers inside [INT_MIN, UINT_MAX] and `"#<digits>"` /
// `"#0x<HEX>"` strings outside; absent fields get their default values under use_default_values (and
// auto_default_values for proto3), empty repeated fields are `[]`; unset message and oneof fields are left out.
// Beyond APISIX: 64-bit numbers keep every digit (APISIX prints 2.2517998136853e+15), floats print their
// shortest float32 form, NaN/Infinity become proto3 JSON strings, and bytes that are not UTF-8 are base64
// (APISIX emits the raw bytes, which is not valid JSON). Duration, the wrappers, Struct, Value and ListValue
// print their proto3 JSON forms (wkt.ts); a wrapper's int64 follows the int64 option like any int64.
import protobuf from 'protobufjs';
import { Long, longFromHash } from './long.ts';
import { durationText, fieldById, VALUE, wktKind } from './wkt.ts';

export type EnumMode = 'name' | 'value';
export type Int64Mode = 'number' | 'string' | 'hexstring';
export type DefaultsMode = 'auto' | 'use' | 'none';

export interface DecodeOptions {
  readonly enums: EnumMode;
  readonly int64: Int64Mode;
  readonly defaults: DefaultsMode;
}

/** pb_option list -> options; lua-protobuf applies the sorted list in order, so the last per category wins. */
export function decodeOptions(list: readonly string[]): DecodeOptions {
  let enums: EnumMode = 'name';
  let int64: Int64Mode = 'number';
  let defaults: DefaultsMode = 'auto';
  for (const opt of [...list].sort()) {
    if (opt === 'enum_as_name') enums = 'name';
    else if (opt === 'enum_as_value') enums = 'value';
    else if (opt === 'int64_as_number') int64 = 'number';
    else if (opt === 'int64_as_string') int64 = 'string';
    else if (opt === 'int64_as_hexstring') int64 = 'hexstring';
    else if (opt === 'auto_default_values') defaults = 'auto';
    else if (opt === 'use_default_values') defaults = 'use';
    // use_default_metatable: defaults live in a metatable the JSON encoder never reads.
    else if (opt === 'no_default_values' || opt === 'use_default_metatable') defaults = 'none';
    // enable_hooks / disable_hooks: no hooks can be registered here.
  }
  return { enums, int64, defaults };
}

const LONG_KINDS = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const UNSIGNED = new Set(['uint64', 'fixed64']);
const INT_MIN = Long.fromInt(-0x80000000);
const UINT_MAX = Long.fromNumber(0xffffffff);
const utf8 = new TextDecoder('utf-8', { fatal: true });

function longText(v: Long | number, unsigned: boolean, mode: Int64Mode): string {
  const n = typeof v === 'number' ? Long.fromNumber(v, unsigned) : unsigned ? v.toUnsigned() : v.toSigned();
  if (mode === 'number') return n.toString();
  const inRange = unsigned ? n.lessThanOrEqual(UINT_MAX) : n.greaterThanOrEqual(INT_MIN) && n.lessThanOrEqual(UINT_MAX);
  if (inRange) return n.toString();
  const neg = n.isNegative();
  const abs = neg ? n.negate().toUnsigned() : n.toUnsigned();
  const body = mode === 'string' ? abs.toString(10) : `0x${abs.toString(16).toUpperCase()}`;
  return JSON.stringify(`#${neg ? '-' : ''}${body}`);
}

function floatText(v: number): string {
  for (let p = 1; p < 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return JSON.stringify(s);
  }
  return JSON.stringify(v);
}

function numberText(v: number, type: string): string {
  if (!Number.isFinite(v)) return JSON.stringify(Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity');
  return type === 'float' ? floatText(v) : JSON.stringify(v);
}

function bytesText(v: Uint8Array): string {
  try {
    return JSON.stringify(utf8.decode(v));
  } catch {
    return JSON.stringify(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64'));
  }
}

/** A field of a decoded well-known message: its own value, else the type's default (what an absent field means). */
function member(msg: protobuf.Message, field: protobuf.Field, o: DecodeOptions): string {
  const v = (msg as unknown as Record<string, unknown>)[field.name];
  return v === undefined || v === null ? defaultText(field, o) : valueText(field, v, o);
}

function structText(type: protobuf.Type, msg: protobuf.Message, o: DecodeOptions): string {
  const fields = fieldById(type, 1);
  const m = (msg as unknown as Record<string, unknown>)[fields.name] as Record<string, unknown> | undefined;
  if (m === undefined) return '{}';
  const valueType = fields.resolvedType as protobuf.Type;
  return '{' + Object.keys(m).map((k) => `${JSON.stringify(k)}:${valueOf(valueType, m[k] as protobuf.Message, o)}`).join(',') + '}';
}

function listText(type: protobuf.Type, msg: protobuf.Message, o: DecodeOptions): string {
  const values = fieldById(type, 1);
  const list = (msg as unknown as Record<string, unknown>)[values.name] as protobuf.Message[] | undefined;
  const valueType = values.resolvedType as protobuf.Type;
  return '[' + (list ?? []).map((x) => valueOf(valueType, x, o)).join(',') + ']';
}

/** The oneof member `id` of a decoded Value when it is the one set (decoding sets only that one as own). */
function ownField(own: Record<string, unknown>, type: protobuf.Type, id: number): unknown {
  const name = fieldById(type, id).name;
  return Object.prototype.hasOwnProperty.call(own, name) ? own[name] : undefined;
}

/** A google.protobuf.Value as the JSON value it holds (no kind set: null). */
function valueOf(type: protobuf.Type, msg: protobuf.Message, o: DecodeOptions): string {
  const own = msg as unknown as Record<string, unknown>;
  let x: unknown;
  if ((x = ownField(own, type, VALUE.number)) !== undefined) return numberText(x as number, 'double');
  if ((x = ownField(own, type, VALUE.string)) !== undefined) return JSON.stringify(x);
  if ((x = ownField(own, type, VALUE.bool)) !== undefined) return JSON.stringify(x);
  if ((x = ownField(own, type, VALUE.struct)) !== undefined) return structText(fieldById(type, VALUE.struct).resolvedType as protobuf.Type, x as protobuf.Message, o);
  if ((x = ownField(own, type, VALUE.list)) !== undefined) return listText(fieldById(type, VALUE.list).resolvedType as protobuf.Type, x as protobuf.Message, o);
  return 'null';
}

/** A message of a well-known type in its proto3 JSON form (wkt.ts); null for any other message. */
function wellKnownText(type: protobuf.Type, msg: protobuf.Message, o: DecodeOptions): string | null {
  switch (wktKind(type)) {
    case 'duration': {
      const own = msg as unknown as Record<string, unknown>;
      const seconds = own[fieldById(type, 1).name] as Long | number | undefined;
      const nanos = own[fieldById(type, 2).name] as number | undefined;
      return JSON.stringify(durationText(seconds ?? 0, nanos ?? 0));
    }
    case 'wrapper':
      return member(msg, fieldById(type, 1), o);
    case 'struct':
      return structText(type, msg, o);
    case 'list':
      return listText(type, msg, o);
    case 'value':
      return valueOf(type, msg, o);
    default:
      return null;
  }
}

function valueText(field: protobuf.Field, v: unknown, o: DecodeOptions): string {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) return wellKnownText(rt, v as protobuf.Message, o) ?? messageText(rt, v as protobuf.Message, o);
  if (rt instanceof protobuf.Enum) {
    const n = v as number;
    const name = o.enums === 'name' ? rt.valuesById[n] : undefined;
    return name !== undefined ? JSON.stringify(name) : String(n);
  }
  const type = field.type;
  if (LONG_KINDS.has(type)) return longText(v as Long | number, UNSIGNED.has(type), o.int64);
  if (type === 'bytes') return bytesText(v as Uint8Array);
  if (type === 'double' || type === 'float') return numberText(v as number, type);
  return JSON.stringify(v);
}

function defaultText(field: protobuf.Field, o: DecodeOptions): string {
  if (field.map) return '{}';
  if (field.repeated) return '[]';
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Enum) {
    const first = (field.typeDefault as number | undefined) ?? 0;
    return valueText(field, first, o);
  }
  if (field.type === 'bytes') return '""';
  const d = field.defaultValue as unknown;
  if (d === null || d === undefined) return field.type === 'string' ? '""' : field.type === 'bool' ? 'false' : '0';
  return valueText(field, d, o);
}

function mapKeyText(keyType: string, k: string): string {
  if (!LONG_KINDS.has(keyType)) return k;
  return longFromHash(k, UNSIGNED.has(keyType)).toString();
}

function useDefaults(type: protobuf.Type, o: DecodeOptions): boolean {
  if (o.defaults === 'use') return true;
  if (o.defaults === 'none') return false;
  return (type as unknown as { _edition?: string })._edition === 'proto3';
}

/** A decoded message as JSON text. */
export function messageText(type: protobuf.Type, msg: protobuf.Message, o: DecodeOptions): string {
  const defaults = useDefaults(type, o);
  const own = msg as unknown as Record<string, unknown>;
  let out = '{';
  let first = true;
  for (const field of type.fieldsArray) {
    const present = Object.prototype.hasOwnProperty.call(own, field.name);
    const v = present ? own[field.name] : undefined;
    let text: string;
    if (field.map) {
      const m = v as Record<string, unknown> | undefined;
      const keys = m === undefined ? [] : Object.keys(m);
      if (keys.length === 0) {
        if (!defaults) continue;
        text = '{}';
      } else {
        const keyType = (field as unknown as protobuf.MapField).keyType;
        text = '{' + keys.map((k) => `${JSON.stringify(mapKeyText(keyType, k))}:${valueText(field, m![k], o)}`).join(',') + '}';
      }
    } else if (field.repeated) {
      const list = v as unknown[] | undefined;
      if (list === undefined || list.length === 0) {
        if (!defaults) continue;
        text = '[]';
      } else {
        text = '[' + list.map((item) => valueText(field, item, o)).join(',') + ']';
      }
    } else if (present && v !== null && v !== undefined) {
      text = valueText(field, v, o);
    } else {
      if (!defaults || field.partOf !== null || field.resolvedType instanceof protobuf.Type) continue;
      text = defaultText(field, o);
    }
    out += (first ? '' : ',') + JSON.stringify(field.name) + ':' + text;
    first = false;
  }
  return out + '}';
}

/** The message of one gRPC frame (5-byte prefix) in `body`; null when the body holds no whole frame. */
export function unframe(body: Buffer): Buffer | null {
  if (body.length < 5) return null;
  const len = body.readUInt32BE(1);
  if (body[0] !== 0 || body.length < 5 + len) return null;
  return body.subarray(5, 5 + len);
}
