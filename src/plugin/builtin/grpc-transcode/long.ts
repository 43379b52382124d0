// The 64-bit integer class protobufjs decodes int64 fields into (long.js, loaded by protobufjs as util.Long);
// typed here with just what the transcoder uses, since protobufjs types it as a bare constructor.
import protobuf from 'protobufjs';

export interface Long {
  readonly unsigned: boolean;
  toString(radix?: number): string;
  toNumber(): number;
  toSigned(): Long;
  toUnsigned(): Long;
  negate(): Long;
  isNegative(): boolean;
  lessThan(other: Long | number): boolean;
  greaterThan(other: Long | number): boolean;
  lessThanOrEqual(other: Long | number): boolean;
  greaterThanOrEqual(other: Long | number): boolean;
}

interface LongStatic {
  fromNumber(value: number, unsigned?: boolean): Long;
  fromInt(value: number, unsigned?: boolean): Long;
  fromString(text: string, unsigned?: boolean, radix?: number): Long;
}

export const Long = protobuf.util.Long as unknown as LongStatic;

/** protobufjs keys 64-bit map entries by an 8-character hash of the value. */
export function longFromHash(hash: string, unsigned: boolean): Long {
  return (protobuf.util.LongBits.fromHash(hash) as unknown as { toLong(u: boolean): Long }).toLong(unsigned);
}
