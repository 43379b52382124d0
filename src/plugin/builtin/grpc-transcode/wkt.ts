// Well-known types with a proto3 JSON form of their own (https://protobuf.dev/programming-guides/json/), which
// the transcoder reads and writes in that form: Duration as "1.5s", the wrappers (Int64Value, StringValue,
// BoolValue, ...) as their bare value, Struct as a JSON object, ListValue as an array, Value as any JSON value.
// Timestamp keeps APISIX's {seconds, nanos} object (lua-protobuf knows no JSON mapping), as every other message.
// Fields are found by number, not name: protobufjs' bundled google/protobuf/*.proto use lowerCamelCase names
// (nullValue) where a descriptor set with keepCase gives the declared ones (null_value).
import protobuf from 'protobufjs';
import { Long } from './long.ts';

export type WktKind = 'duration' | 'wrapper' | 'struct' | 'value' | 'list';

const KINDS: Readonly<Record<string, WktKind>> = {
  '.google.protobuf.Duration': 'duration',
  '.google.protobuf.DoubleValue': 'wrapper',
  '.google.protobuf.FloatValue': 'wrapper',
  '.google.protobuf.Int64Value': 'wrapper',
  '.google.protobuf.UInt64Value': 'wrapper',
  '.google.protobuf.Int32Value': 'wrapper',
  '.google.protobuf.UInt32Value': 'wrapper',
  '.google.protobuf.BoolValue': 'wrapper',
  '.google.protobuf.StringValue': 'wrapper',
  '.google.protobuf.BytesValue': 'wrapper',
  '.google.protobuf.Struct': 'struct',
  '.google.protobuf.Value': 'value',
  '.google.protobuf.ListValue': 'list',
};

// protobufjs computes fullName by walking the parents on every read: the kind is cached per type.
const kinds = new WeakMap<protobuf.Type, WktKind | null>();

/** The well-known kind of `type`, or null for any other message (Timestamp included). */
export function wktKind(type: protobuf.Type): WktKind | null {
  let k = kinds.get(type);
  if (k === undefined) {
    k = Object.prototype.hasOwnProperty.call(KINDS, type.fullName) ? KINDS[type.fullName]! : null;
    kinds.set(type, k);
  }
  return k;
}

/** Field `id` of a well-known type (present by construction). */
export function fieldById(type: protobuf.Type, id: number): protobuf.Field {
  return type.fieldsById[id]!;
}

/** Value's oneof members by field number. */
export const VALUE = { null: 1, number: 2, string: 3, bool: 4, struct: 5, list: 6 } as const;

/** Duration's range: +-10,000 years in seconds (duration.proto). */
const MAX_SECONDS = 315_576_000_000n;
// At most 12 second digits (MAX_SECONDS has 12): longer text is out of range without BigInt ever parsing it.
const DURATION_TEXT = /^(-)?([0-9]{1,12})(?:\.([0-9]{1,9}))?s$/;

/** "1.5s" / "-0.000000001s" -> seconds and nanos of the same sign; null when malformed or out of range. */
export function parseDuration(text: string): { seconds: Long; nanos: number } | null {
  const m = DURATION_TEXT.exec(text);
  if (m === null) return null;
  const secs = BigInt(m[2]!);
  if (secs > MAX_SECONDS) return null;
  const nanos = m[3] === undefined ? 0 : Number(m[3].padEnd(9, '0'));
  const neg = m[1] !== undefined;
  return { seconds: Long.fromString((neg ? -secs : secs).toString(), false, 10), nanos: neg ? -nanos : nanos };
}

/** Seconds and nanos -> "1.5s", with 0, 3, 6 or 9 fractional digits as the proto3 JSON mapping prints them. */
export function durationText(seconds: Long | number, nanos: number): string {
  const s = typeof seconds === 'number' ? BigInt(seconds) : BigInt(seconds.toString());
  const neg = s < 0n || nanos < 0;
  const abs = s < 0n ? -s : s;
  const n = Math.abs(nanos);
  let frac = '';
  if (n !== 0) {
    frac = String(n).padStart(9, '0');
    if (frac.endsWith('000000')) frac = frac.slice(0, 3);
    else if (frac.endsWith('000')) frac = frac.slice(0, 6);
    frac = `.${frac}`;
  }
  return `${neg ? '-' : ''}${abs}${frac}s`;
}
