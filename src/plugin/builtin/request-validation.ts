// request-validation (APISIX priority 2800, rewrite phase): validates request headers (`header_schema`) and the
// body (`body_schema`) with JSON Schema, through the project's one Ajv instance (src/schema/compile.ts), so
// failures read as APISIX's validator words them (`property "x" is required`).
// - A failure answers `rejected_code` (default 400) with `rejected_msg` or else the validator's message as
//   text. A missing or unreadable body, or one above `max_req_body_size`, answers `rejected_code` with
//   `rejected_msg` (no message: nginx's HTML page).
// - Bodies are JSON unless Content-Type starts with application/x-www-form-urlencoded (decoded as
//   ngx.decode_args: repeated keys become arrays, a key without `=` is `true`). Several Content-Type headers
//   are rejected: the gateway and the upstream could read the body differently.
// - A JSON body that passed is re-encoded (defaults filled in) and that is what the upstream receives, so the
//   upstream cannot see a different document than the one checked (duplicate keys: the last wins).
// - Header names are case-insensitive as in nginx: a schema property `User-Agent` sees the `user-agent` header.
import type { Json, JsonObject } from '../../config/resources.ts';
import { ownGet, ownSet } from '../../config/safe-json.ts';
import { compileSchema, runSchema, type CompiledSchema } from '../../schema/compile.ts';
import type { HeaderMap, HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    header_schema: { type: 'object' },
    body_schema: { type: 'object' },
    max_req_body_size: {
      type: 'integer',
      minimum: 1,
      default: 67108864,
      description: 'maximum request body size in bytes buffered into memory; larger request bodies are rejected',
    },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 400 },
    rejected_msg: { type: 'string', minLength: 1, maxLength: 256 },
  },
  anyOf: [{ required: ['header_schema'] }, { required: ['body_schema'] }],
};

// Ajv keeps every compiled schema object for the life of the process; user schemas are therefore compiled
// once per distinct content, so re-applying a route does not compile (and retain) its schema again.
const byContent = new Map<string, CompiledSchema>();

function compileUserSchema(s: JsonObject): CompiledSchema {
  const key = JSON.stringify(s);
  let c = byContent.get(key);
  if (c === undefined) {
    c = compileSchema(JSON.parse(key) as JsonObject);
    byContent.set(key, c);
  }
  return c;
}

function asObject(v: unknown): JsonObject | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : undefined;
}

/** Schema property names whose lower-case form differs (looked up case-insensitively at request time). */
function mixedCaseNames(s: JsonObject): [string, string][] {
  const names = new Set<string>(Object.keys(asObject(s.properties) ?? {}));
  if (Array.isArray(s.required)) for (const r of s.required) if (typeof r === 'string') names.add(r);
  const out: [string, string][] = [];
  for (const n of names) if (n.toLowerCase() !== n) out.push([n, n.toLowerCase()]);
  return out;
}

function unescapeArg(s: string): string {
  const plus = s.replaceAll('+', ' ');
  try {
    return decodeURIComponent(plus);
  } catch {
    // nginx leaves malformed escapes as they are; decode the well-formed ones.
    return plus.replace(/%[0-9a-fA-F]{2}/g, (m) => String.fromCharCode(parseInt(m.slice(1), 16)));
  }
}

/** ngx.decode_args(body, 0). */
export function decodeArgs(body: string): JsonObject {
  const out: JsonObject = {};
  for (const part of body.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = unescapeArg(eq < 0 ? part : part.slice(0, eq));
    if (key === '') continue;
    const value: string | boolean = eq < 0 ? true : unescapeArg(part.slice(eq + 1));
    // Own-property reads and writes: the keys are the client's (`__proto__`, `constructor`).
    const prev = ownGet(out, key) as Json | undefined;
    if (prev === undefined) ownSet(out, key, value);
    else if (Array.isArray(prev)) prev.push(value);
    else ownSet(out, key, [prev, value]);
  }
  return out;
}

class RequestValidation implements PluginInstance {
  readonly #headers: CompiledSchema | undefined;
  readonly #headerAliases: readonly [string, string][];
  readonly #body: CompiledSchema | undefined;
  readonly #maxBody: number;
  readonly #status: number;
  readonly #msg: string | undefined;
  readonly #plain: PluginResponse;

  constructor(conf: JsonObject) {
    const hs = asObject(conf.header_schema);
    const bs = asObject(conf.body_schema);
    this.#headers = hs === undefined ? undefined : compileUserSchema(hs);
    this.#headerAliases = hs === undefined ? [] : mixedCaseNames(hs);
    this.#body = bs === undefined ? undefined : compileUserSchema(bs);
    this.#maxBody = typeof conf.max_req_body_size === 'number' ? conf.max_req_body_size : 67108864;
    this.#status = typeof conf.rejected_code === 'number' ? conf.rejected_code : 400;
    this.#msg = typeof conf.rejected_msg === 'string' ? conf.rejected_msg : undefined;
    this.#plain = this.#msg === undefined ? { status: this.#status } : { status: this.#status, body: this.#msg };
  }

  rewrite(ctx: HttpContext): PluginResponse | undefined | Promise<PluginResponse | undefined> {
    const headers = ctx.request.headers;
    if (this.#headers !== undefined) {
      const err = runSchema(this.#headers, this.#headerView(headers));
      if (err !== null) return this.#reject(err);
    }
    return this.#body === undefined ? undefined : this.#checkBody(ctx, this.#body);
  }

  #reject(err: string): PluginResponse {
    return { status: this.#status, body: this.#msg ?? err };
  }

  /** A fresh object per request: the validator writes schema defaults into it. */
  #headerView(headers: HeaderMap): JsonObject {
    const view: JsonObject = {};
    for (const k of Object.keys(headers)) {
      const v = headers[k];
      if (v !== undefined) view[k] = Array.isArray(v) ? [...v] : v;
    }
    for (const [declared, lower] of this.#headerAliases) {
      const v = headers[lower];
      if (v !== undefined) view[declared] = Array.isArray(v) ? [...v] : v;
    }
    return view;
  }

  async #checkBody(ctx: HttpContext, bodySchema: CompiledSchema): Promise<PluginResponse | undefined> {
    const req = ctx.request;
    const declared = req.headers['content-length'];
    if (typeof declared === 'string' && Number(declared) > this.#maxBody) return this.#plain;
    let raw: Buffer;
    try {
      raw = await req.readBody();
    } catch {
      return this.#plain;
    }
    if (raw.length === 0 || raw.length > this.#maxBody) return this.#plain;
    const contentType = req.headers['content-type'];
    if (Array.isArray(contentType)) return this.#plain;
    const form = contentType !== undefined && contentType.toLowerCase().startsWith('application/x-www-form-urlencoded');
    let doc: unknown;
    if (form) {
      doc = decodeArgs(raw.toString('utf8'));
    } else {
      try {
        doc = JSON.parse(raw.toString('utf8'));
      } catch (err) {
        return this.#reject((err as Error).message);
      }
    }
    const err = runSchema(bodySchema, doc);
    if (err !== null) return this.#reject(err);
    if (!form) req.setBody(JSON.stringify(doc));
    return undefined;
  }
}

export const requestValidationPlugin: PluginDef = {
  name: 'request-validation',
  version: '0.1',
  priority: 2800,
  schema,
  subsystems: ['http'],
  status: 'stable',
  check(conf) {
    for (const key of ['body_schema', 'header_schema']) {
      const s = asObject(conf[key]);
      if (s === undefined) continue;
      try {
        compileUserSchema(s);
      } catch (err) {
        return `invalid ${key}: ${(err as Error).message}`;
      }
    }
    return null;
  },
  create(conf) {
    return new RequestValidation(conf);
  },
};

export default requestValidationPlugin;
