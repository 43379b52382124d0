// The parts of hessian.js (no bundled types) the Dubbo codec uses.
declare module 'hessian.js' {
  interface Encoder {
    /** Plain JS values map to hessian types; `{$class, $}` writes a typed Java value. */
    write(value: unknown): Encoder;
    get(): Buffer;
    reset(): Encoder;
  }
  interface Decoder {
    /** Reads the next value; throws TypeError/RangeError on malformed input. */
    read(withType?: boolean): unknown;
  }
  const hessian: {
    EncoderV2: new (opts?: { size?: number }) => Encoder;
    DecoderV2: new (buf?: Buffer) => Decoder;
    encode(value: unknown, version?: '1.0' | '2.0'): Buffer;
    decode(buf: Buffer, version?: '1.0' | '2.0', withType?: boolean): unknown;
  };
  export default hessian;
}
