// request-id (APISIX priority 12015). rewrite: keeps a non-empty incoming `header_name` value, otherwise
// generates one (uuid v4 | nanoid | range_id | ksuid) and sets it on the upstream request. The id is exposed
// as the variable `request_id` (what APISIX >= 3.15 logs) and as ctx.pluginData 'request-id'.
// header_filter: with include_in_response, adds it to the response unless the upstream already sent one.
import { randomBytes, randomUUID } from 'node:crypto';
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance } from '../plugin.ts';

/** APISIX's default range_id character set (sic: it lists `G` twice and no `J`). */
export const RANGE_ID_CHARSET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIGKLMNOPQRSTUVWXYZ0123456789';
const NANOID_ALPHABET = 'useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const KSUID_EPOCH = 1_400_000_000;

const schema: JsonObject = {
  type: 'object',
  properties: {
    header_name: { type: 'string', default: 'X-Request-Id' },
    include_in_response: { type: 'boolean', default: true },
    algorithm: { type: 'string', enum: ['uuid', 'nanoid', 'range_id', 'ksuid'], default: 'uuid' },
    range_id: {
      type: 'object',
      properties: {
        length: { type: 'integer', minimum: 6, default: 16 },
        char_set: { type: 'string', minLength: 6, default: RANGE_ID_CHARSET },
      },
      default: {},
    },
  },
};

export function nanoid(size = 21): string {
  const bytes = randomBytes(size);
  let out = '';
  for (let i = 0; i < size; i++) out += NANOID_ALPHABET[bytes[i] & 63];
  return out;
}

/** `length` characters drawn uniformly from `charset` (rejection sampling, bounded). */
export function rangeId(charset: string, length: number): string {
  const n = charset.length;
  const limit = 256 - (256 % n);
  let out = '';
  for (let round = 0; round < 64 && out.length < length; round++) {
    const bytes = randomBytes(length * 2);
    for (let i = 0; i < bytes.length && out.length < length; i++) {
      if (bytes[i] < limit) out += charset[bytes[i] % n];
    }
  }
  return out;
}

/** A KSUID: 4-byte timestamp since 2014-05-13 plus 16 random bytes, base62 in 27 characters. */
export function ksuid(nowSeconds = Math.floor(Date.now() / 1000)): string {
  const buf = Buffer.allocUnsafe(20);
  buf.writeUInt32BE((nowSeconds - KSUID_EPOCH) >>> 0, 0);
  randomBytes(16).copy(buf, 4);
  let value = BigInt('0x' + buf.toString('hex'));
  let out = '';
  while (value > 0n) {
    out = BASE62[Number(value % 62n)] + out;
    value /= 62n;
  }
  return out.padStart(27, '0');
}

type Generator = (conf: JsonObject) => () => string;

const GENERATORS: Record<string, Generator> = {
  uuid: () => randomUUID,
  nanoid: () => () => nanoid(),
  ksuid: () => () => ksuid(),
  range_id: (conf) => {
    const r = (conf.range_id ?? {}) as JsonObject;
    const charset = typeof r.char_set === 'string' && r.char_set.length > 0 ? r.char_set : RANGE_ID_CHARSET;
    const length = typeof r.length === 'number' ? r.length : 16;
    return () => rangeId(charset, length);
  },
};

const DATA_KEY = 'request-id';

class RequestId implements PluginInstance {
  readonly #header: string;
  readonly #include: boolean;
  readonly #generate: () => string;

  constructor(conf: JsonObject) {
    this.#header = (typeof conf.header_name === 'string' ? conf.header_name : 'X-Request-Id').toLowerCase();
    this.#include = conf.include_in_response !== false;
    const algorithm = typeof conf.algorithm === 'string' ? conf.algorithm : 'uuid';
    const gen = GENERATORS[algorithm];
    if (gen === undefined) throw new Error(`unknown request-id algorithm: ${algorithm}`);
    this.#generate = gen(conf);
  }

  rewrite(ctx: HttpContext): undefined {
    const incoming = ctx.request.headers[this.#header];
    let id = Array.isArray(incoming) ? incoming[0] : incoming;
    if (id === undefined || id === '') {
      id = this.#generate();
      ctx.request.setHeader(this.#header, id);
    }
    ctx.pluginData.set(DATA_KEY, id);
    ctx.vars.set('request_id', id);
    return undefined;
  }

  header_filter(ctx: HttpContext): void {
    if (!this.#include) return;
    const id = ctx.pluginData.get(DATA_KEY);
    if (typeof id !== 'string') return;
    if (ctx.response.headers[this.#header] === undefined) ctx.response.setHeader(this.#header, id);
  }
}

export const requestIdPlugin: PluginDef = {
  name: 'request-id',
  version: '0.1',
  priority: 12015,
  schema,
  subsystems: ['http'],
  status: 'stable',
  create(conf) {
    return new RequestId(conf);
  },
};

export default requestIdPlugin;
