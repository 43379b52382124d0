// APISIX's `nginx_config.http.access_log_format` (switchyard.access_log.format): an nginx log_format string of
// `$var` / `${var}` references and literal text, compiled once at config time into a list of parts, so a line
// costs one getter call per variable and one string concatenation per part. Values are escaped as nginx's
// `escape=default` (", \ and bytes outside 0x20-0x7e as \xHH), `escape=json` (JSON string escaping) or `none`;
// an unset or unknown variable logs as `-` like nginx (nothing with escape=json, as nginx; nginx refuses an
// unknown name at start, here it stays unset since plugins and headers add variables at run time). Credential
// query arguments are redacted in every variable that carries the query (request, request_uri, args,
// http_referer...), as in the JSON line. test/http/access-log-format.test.ts compares the lines with nginx's.
import type { VarValue } from '../router/vars.ts';
import type { RequestContext } from './context.ts';
import { resolveVar } from './vars.ts';

export type AccessLogEscape = 'default' | 'json' | 'none';

/** APISIX's default access_log_format (conf/config.yaml of APISIX 3.x). */
export const APISIX_ACCESS_LOG_FORMAT =
  '$remote_addr - $remote_user [$time_local] $http_host "$request" $status $body_bytes_sent $request_time ' +
  '"$http_referer" "$http_user_agent" $upstream_addr $upstream_status $upstream_response_time ' +
  '"$upstream_scheme://$upstream_host$upstream_uri"';

/** What a variable getter sees: the exchange, its body bytes, and the credential redaction of its route. */
export interface LineInput {
  ctx: RequestContext;
  bytes: number;
  redact: (uri: string) => string;
}

type Getter = (i: LineInput) => VarValue;
type Escaper = (s: string, wire: boolean) => string;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** The local UTC offset as nginx prints it: +0100 (time_local) or +01:00 (time_iso8601). */
function offset(d: Date, colon: boolean): string {
  const m = -d.getTimezoneOffset();
  const a = Math.abs(m);
  return `${m < 0 ? '-' : '+'}${pad2(Math.floor(a / 60))}${colon ? ':' : ''}${pad2(a % 60)}`;
}

// Both time strings are cached per second (nginx's own resolution for them).
let localSec = -1;
let local = '';
let isoSec = -1;
let iso = '';

function timeLocal(): string {
  const sec = Math.floor(Date.now() / 1000);
  if (sec !== localSec) {
    localSec = sec;
    const d = new Date(sec * 1000);
    local = `${pad2(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())} ${offset(d, false)}`;
  }
  return local;
}

function timeIso8601(): string {
  const sec = Math.floor(Date.now() / 1000);
  if (sec !== isoSec) {
    isoSec = sec;
    const d = new Date(sec * 1000);
    iso = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}T${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}${offset(d, true)}`;
  }
  return iso;
}

/** nginx's $remote_user: the user name of a Basic Authorization header. */
function remoteUser(ctx: RequestContext): string | undefined {
  const auth = ctx.headerValue('authorization');
  if (auth === undefined || auth.length < 7 || auth.slice(0, 6).toLowerCase() !== 'basic ') return undefined;
  const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon > 0 ? decoded.slice(0, colon) : undefined;
}

function seconds(ms: number): string {
  return (Math.round(ms) / 1000).toFixed(3);
}

function redactedQuery(i: LineInput): string {
  const q = i.ctx.request.query;
  return q === '' ? '' : i.redact(`?${q}`).slice(1);
}

/** Variables of nginx's log module and of APISIX's default format that are not request variables elsewhere. */
const LOG_VARS = new Map<string, Getter>([
  ['time_local', () => timeLocal()],
  ['time_iso8601', () => timeIso8601()],
  ['msec', () => (Date.now() / 1000).toFixed(3)],
  ['request', (i) => `${i.ctx.request.method} ${i.redact(i.ctx.rawUri)} HTTP/${i.ctx.request.httpVersion}`],
  ['request_uri', (i) => i.redact(i.ctx.rawUri)],
  ['real_request_uri', (i) => i.redact(i.ctx.rawUri)],
  ['args', redactedQuery],
  ['query_string', redactedQuery],
  ['http_referer', (i) => {
    const r = i.ctx.headerValue('referer');
    return r === undefined ? undefined : i.redact(r);
  }],
  ['remote_user', (i) => remoteUser(i.ctx)],
  ['body_bytes_sent', (i) => i.bytes],
  ['request_time', (i) => seconds(Number(process.hrtime.bigint() - i.ctx.startNs) / 1e6)],
  ['upstream_response_time', (i) => (i.ctx.upstreamLatencyMs === undefined ? undefined : seconds(i.ctx.upstreamLatencyMs))],
  ['upstream_scheme', (i) => i.ctx.upstreamScheme],
  ['upstream_host', (i) => i.ctx.upstreamHost],
  ['pid', () => process.pid],
]);

// Strings from the wire (request line, header values) hold one byte per character (latin1, as node:http and
// the socket engine decode them); other values (decoded paths, names) are Unicode and are logged as UTF-8.
const WIRE_VARS = new Set(['request', 'request_uri', 'real_request_uri', 'args', 'query_string', 'http_referer']);
const isWire = (name: string): boolean => WIRE_VARS.has(name) || name.startsWith('http_') || name.startsWith('cookie_');

// nginx escape=default: ", \ and bytes < 0x20 or > 0x7e as \xHH (upper-case hex).
const NEEDS_DEFAULT = /["\\\u0000-\u001f\u007f-\uffff]/;
// escape=json: ", \ and control characters; nginx copies other bytes as they are.
const NEEDS_JSON = /["\\\u0000-\u001f\ud800-\udfff]/;
const NON_ASCII = /[\u0080-\uffff]/;

function escapeDefault(s: string, wire: boolean): string {
  if (!NEEDS_DEFAULT.test(s)) return s;
  let out = '';
  for (const b of Buffer.from(s, wire ? 'latin1' : 'utf8')) {
    out += b === 0x22 || b === 0x5c || b < 0x20 || b > 0x7e ? `\\x${b < 16 ? '0' : ''}${b.toString(16).toUpperCase()}` : String.fromCharCode(b);
  }
  return out;
}

/** The bytes of a wire string as text (the log file is UTF-8; nginx would copy the bytes). */
function wireText(s: string, wire: boolean): string {
  return wire && NON_ASCII.test(s) ? Buffer.from(s, 'latin1').toString('utf8') : s;
}

function escapeJson(s: string, wire: boolean): string {
  const t = wireText(s, wire);
  return NEEDS_JSON.test(t) ? JSON.stringify(t).slice(1, -1) : t;
}

const ESCAPERS: Record<AccessLogEscape, Escaper> = { default: escapeDefault, json: escapeJson, none: wireText };

/** A variable's text; an unset one is `missing` (nginx: `-`, but nothing in escape=json). */
function text(v: VarValue, missing: string): string {
  if (v === undefined || v === null || v === '') return missing;
  if (Array.isArray(v)) return v.length === 0 ? missing : v.join(', ');
  return String(v);
}

/** A compiled format: literal text and variable parts in order. */
export class AccessLogFormat {
  private readonly literals: string[];
  private readonly getters: Getter[];
  private readonly wire: boolean[];
  private readonly escape: Escaper;
  private readonly missing: string;

  private constructor(literals: string[], getters: Getter[], wire: boolean[], escape: AccessLogEscape) {
    this.literals = literals;
    this.getters = getters;
    this.wire = wire;
    this.escape = ESCAPERS[escape];
    this.missing = escape === 'json' ? '' : '-';
  }

  /** Compiles `format`; throws on a malformed `${` reference (config validation reports it). */
  static compile(format: string, escape: AccessLogEscape = 'default'): AccessLogFormat {
    const literals: string[] = [];
    const getters: Getter[] = [];
    const wire: boolean[] = [];
    let lit = '';
    let i = 0;
    while (i < format.length) {
      const c = format[i]!;
      if (c !== '$') {
        lit += c;
        i++;
        continue;
      }
      let name: string;
      if (format[i + 1] === '{') {
        const end = format.indexOf('}', i + 2);
        if (end < 0) throw new Error(`access_log_format: unterminated \${ at position ${i}`);
        name = format.slice(i + 2, end);
        i = end + 1;
      } else {
        let j = i + 1;
        while (j < format.length && /[A-Za-z0-9_]/.test(format[j]!)) j++;
        name = format.slice(i + 1, j);
        i = j;
      }
      if (name === '') {
        lit += '$';
        continue;
      }
      if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`access_log_format: invalid variable name "${name}"`);
      literals.push(lit);
      lit = '';
      const own = LOG_VARS.get(name);
      getters.push(own ?? ((inp: LineInput) => resolveVar(inp.ctx, name)));
      wire.push(isWire(name));
    }
    literals.push(lit);
    return new AccessLogFormat(literals, getters, wire, escape);
  }

  /** The line (with its newline) for one exchange. */
  line(input: LineInput): string {
    // hot path
    const lits = this.literals;
    let out = lits[0]!;
    for (let k = 0; k < this.getters.length; k++) out += this.escape(text(this.getters[k]!(input), this.missing), this.wire[k]!) + lits[k + 1]!;
    return `${out}\n`;
  }
}
