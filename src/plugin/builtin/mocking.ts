// mocking (APISIX priority 10900, access phase): answers with a mock instead of proxying.
// - `response_example` (a `$var` template) is the body; otherwise a value is generated from `response_schema`
//   (JSON for json/text content types, `<data>...</data>` XML for xml ones; properties' `example` values are
//   used when present, random values otherwise);
// - `content_type` (default application/json;charset=utf8; must be json, xml, text/plain or text/html),
//   `response_status` (200), `response_headers`, `delay` (seconds, on a timer), and `x-mock-by:
//   Switchyard/<version>` unless `with_mock_header` is false.
import type { JsonObject } from '../../config/resources.ts';
import { VERSION } from '../../version.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { compileVarTemplate, renderTemplate, type VarTemplate } from '../template.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    delay: { type: 'integer', default: 0 },
    response_status: { type: 'integer', default: 200, minimum: 1 },
    content_type: { type: 'string', default: 'application/json;charset=utf8' },
    response_example: { type: 'string' },
    response_schema: { type: 'object' },
    with_mock_header: { type: 'boolean', default: true },
    response_headers: {
      type: 'object',
      minProperties: 1,
      patternProperties: { '^[^:]+$': { oneOf: [{ type: 'string' }, { type: 'number' }] } },
    },
  },
  anyOf: [{ required: ['response_example'] }, { required: ['response_schema'] }],
};

const SUPPORTED = new Set(['application/xml', 'application/json', 'text/plain', 'text/html', 'text/xml']);

function mediaType(contentType: string): string {
  const semi = contentType.indexOf(';');
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

/** Bounds generation on hostile (deeply nested) schemas. */
const MAX_DEPTH = 16;

function randomInt(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

function genScalar(prop: JsonObject): unknown {
  const type = typeof prop.type === 'string' ? prop.type.toLowerCase() : '';
  const ex = prop.example;
  switch (type) {
    case 'string': {
      if (typeof ex === 'string') return ex;
      let s = '';
      for (let i = randomInt(1, 10); i > 0; i--) s += String.fromCharCode(randomInt(97, 122));
      return s;
    }
    case 'number':
      return typeof ex === 'number' ? ex : Math.random() * 10000;
    case 'integer':
      return typeof ex === 'number' ? Math.floor(ex) : randomInt(1, 10000);
    case 'boolean':
      return typeof ex === 'boolean' ? ex : Math.random() < 0.5;
    default:
      return null;
  }
}

function genValue(prop: JsonObject, depth: number): unknown {
  const type = typeof prop.type === 'string' ? prop.type.toLowerCase() : '';
  if (type === 'object') return genObject(prop, depth + 1);
  if (type === 'array') return genArray(prop, depth + 1);
  return genScalar(prop);
}

function genArray(prop: JsonObject, depth: number): unknown[] | null {
  const items = prop.items;
  if (items === null || typeof items !== 'object' || Array.isArray(items) || depth > MAX_DEPTH) return null;
  const out: unknown[] = [];
  for (let n = randomInt(1, 3); n > 0; n--) out.push(genValue(items, depth));
  return out;
}

/** A value generated from a JSON schema of type object (APISIX mocking's generator). */
export function genObject(schemaObj: JsonObject, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const props = schemaObj.properties;
  if (props === null || typeof props !== 'object' || Array.isArray(props) || depth > MAX_DEPTH) return out;
  for (const [k, v] of Object.entries(props)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) out[k] = genValue(v, depth);
  }
  return out;
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function xmlOf(name: string, v: unknown): string {
  if (v === null || v === undefined) return `<${name}></${name}>`;
  if (Array.isArray(v)) return v.map((item) => xmlOf(name, item)).join('');
  if (typeof v === 'object') {
    let inner = '';
    for (const [k, child] of Object.entries(v as Record<string, unknown>)) inner += xmlOf(k, child);
    return `<${name}>${inner}</${name}>`;
  }
  return `<${name}>${xmlEscape(String(v))}</${name}>`;
}

/** Serializes a generated object as `<data>...</data>` (what APISIX's xml2lua produces for the root). */
export function toXml(v: Record<string, unknown>): string {
  return xmlOf('data', v);
}

function sleep(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms));
}

class Mocking implements PluginInstance {
  readonly #example: VarTemplate | null;
  readonly #schema: JsonObject | null;
  readonly #xml: boolean;
  readonly #status: number;
  readonly #headers: Record<string, string>;
  readonly #delayMs: number;

  constructor(conf: JsonObject) {
    this.#example = typeof conf.response_example === 'string' ? compileVarTemplate(conf.response_example) : null;
    this.#schema = (conf.response_schema as JsonObject | undefined) ?? null;
    const contentType = String(conf.content_type ?? 'application/json;charset=utf8');
    const media = mediaType(contentType);
    this.#xml = media === 'application/xml' || media === 'text/xml';
    this.#status = (conf.response_status as number | undefined) ?? 200;
    this.#delayMs = Math.max(0, ((conf.delay as number | undefined) ?? 0) * 1000);
    const headers: Record<string, string> = {};
    const extra = (conf.response_headers as JsonObject | undefined) ?? {};
    for (const [k, v] of Object.entries(extra)) headers[k.toLowerCase()] = String(v);
    headers['content-type'] = contentType;
    if (conf.with_mock_header !== false) headers['x-mock-by'] = `Switchyard/${VERSION}`;
    this.#headers = headers;
  }

  #answer(ctx: HttpContext): PluginResponse {
    let body: string;
    if (this.#example !== null) body = renderTemplate(this.#example, ctx.vars);
    else {
      const value = genObject(this.#schema ?? {});
      body = this.#xml ? toXml(value) : JSON.stringify(value);
    }
    return { status: this.#status, body, headers: this.#headers };
  }

  access(ctx: HttpContext): PhaseResult | Promise<PhaseResult> {
    if (this.#delayMs > 0) return sleep(this.#delayMs).then(() => this.#answer(ctx));
    return this.#answer(ctx);
  }
}

export const mockingPlugin: PluginDef = {
  name: 'mocking',
  version: '0.1',
  priority: 10900,
  schema,
  subsystems: ['http'],
  status: 'stable',
  check(conf) {
    const ct = typeof conf.content_type === 'string' ? conf.content_type : 'application/json;charset=utf8';
    return SUPPORTED.has(mediaType(ct)) ? null : 'unsupported content type!';
  },
  create(conf) {
    return new Mocking(conf);
  },
};

export default mockingPlugin;
