// Access log: one JSON line per request, fields named like APISIX's default access log. The line is built by
// hand (fixed key order, strings escaped only when they need it, the ISO time cached per millisecond) and
// queued on a LineWriter (one write per 16 KB or per 3 s, as APISIX's nginx `buffer=16384 flush=3`); see
// bench/micro/access-log.ts for the cost next to the pino logger call it replaced. Lines keep pino's shape
// ({"level":30,"time":...}). Application logs stay on pino (src/observability/logger.ts).
//
// Credentials never reach it: request headers are not logged at all (Authorization, Cookie, apikey headers),
// and the values of credential query arguments are replaced by `***` in request_uri and http_referer: the
// arguments the route's auth plugins read (key-auth and jwt-auth `query`, also inside multi-auth), and a fixed
// list of common credential names. Names are compared case-insensitively and after percent-decoding, since the
// plugins read decoded names.
import path from 'node:path';
import type { LocalConfig } from '../config/local.ts';
import type { Json, JsonObject } from '../config/resources.ts';
import { LineWriter } from '../observability/line-writer.ts';
import type { PluginChain } from '../plugin/chain.ts';
import { AccessLogFormat, APISIX_ACCESS_LOG_FORMAT, type AccessLogEscape, type LineInput } from './access-log-format.ts';
import type { RequestContext } from './context.ts';

/** Argument names redacted on every route (lower case): the plugins' defaults and common token names. */
export const CREDENTIAL_ARGS: ReadonlySet<string> = new Set([
  'apikey',
  'api_key',
  'api-key',
  'x-api-key',
  'jwt',
  'token',
  'access_token',
  'id_token',
  'refresh_token',
  'client_secret',
  'secret',
  'password',
  'passwd',
  'authorization',
  'signature',
]);

export const REDACTED = '***';

function isObject(v: Json | undefined): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function addQueryName(conf: JsonObject, out: Set<string>): void {
  if (typeof conf.query === 'string' && conf.query !== '') out.add(conf.query.toLowerCase());
}

/** The query argument names the auth plugins of `chain` read beyond CREDENTIAL_ARGS; null when none. */
function chainArgs(chain: PluginChain): ReadonlySet<string> | null {
  const out = new Set<string>();
  for (const step of chain.steps) {
    if (step.def.type !== 'auth') continue;
    addQueryName(step.conf, out);
    const nested = step.conf.auth_plugins;
    if (!Array.isArray(nested)) continue;
    for (const entry of nested) {
      if (!isObject(entry)) continue;
      for (const name in entry) {
        const c = entry[name];
        if (isObject(c)) addQueryName(c, out);
      }
    }
  }
  for (const n of out) if (CREDENTIAL_ARGS.has(n)) out.delete(n);
  return out.size === 0 ? null : out;
}

function decodedName(raw: string): string {
  if (raw.indexOf('%') < 0 && raw.indexOf('+') < 0) return raw.toLowerCase();
  try {
    return decodeURIComponent(raw.replaceAll('+', ' ')).toLowerCase();
  } catch {
    return raw.toLowerCase();
  }
}

/**
 * `uri` with the value of every credential argument replaced by `***`; `uri` itself when it has none. The
 * fragment (a Referer may carry one) is kept as it is.
 */
export function redactQuery(uri: string, extra: ReadonlySet<string> | null = null): string {
  const q = uri.indexOf('?');
  if (q < 0) return uri; // hot path: most requests carry no query
  let end = uri.indexOf('#', q);
  if (end < 0) end = uri.length;
  let out = '';
  let last = q + 1;
  let start = q + 1;
  // One pass over the characters: a query of many `=`-less arguments must not cost a scan per argument.
  while (start < end) {
    let amp = start;
    let eq = -1;
    for (; amp < end; amp++) {
      const c = uri.charCodeAt(amp);
      if (c === 0x26) break; // &
      if (c === 0x3d && eq < 0) eq = amp; // =
    }
    if (eq > start) {
      const name = decodedName(uri.slice(start, eq));
      if (CREDENTIAL_ARGS.has(name) || extra?.has(name)) {
        out += uri.slice(last, eq + 1) + REDACTED;
        last = amp;
      }
    }
    start = amp + 1;
  }
  return out === '' ? uri : uri.slice(0, q + 1) + out + uri.slice(last);
}

const ZEROS = ['', '0', '00', '000', '0000', '00000'];

/**
 * `units / 10^digits` (units a non-negative integer) printed as JavaScript prints that number, from integers:
 * printing a fractional double (its shortest round-trip digits) costs several times as much, twice a line.
 */
export function decimal(units: number, digits: 3 | 6): string {
  const scale = digits === 3 ? 1000 : 1_000_000;
  const int = Math.floor(units / scale);
  let frac = units - int * scale;
  if (frac === 0) return String(int);
  let d: number = digits;
  while (frac % 10 === 0) {
    frac /= 10;
    d--;
  }
  const f = String(frac);
  return `${int}.${ZEROS[d - f.length]}${f}`;
}

/** Characters JSON needs escaped, plus surrogates (JSON.stringify turns lone ones into \u escapes). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

function str(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

// The ISO time is cached per millisecond; its `YYYY-MM-DDTHH:MM:SS.` prefix per second, so a new millisecond
// costs one concatenation rather than a Date.toISOString (about 1 µs: a busy gateway sees a new millisecond on
// nearly every request).
const MILLIS = Array.from({ length: 1000 }, (_, i) => `${String(i).padStart(3, '0')}Z`);
let isoMs = 0;
let iso = '';
let isoSec = -1;
let isoPrefix = '';

function isoTime(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    const ms = now % 1000;
    if (now - ms !== isoSec) {
      isoSec = now - ms;
      isoPrefix = new Date(isoSec).toISOString().slice(0, 20);
    }
    iso = isoPrefix + MILLIS[ms]!;
  }
  return iso;
}

/**
 * Per compiled chain (one per route and snapshot): `uri` with the credential arguments redacted (see
 * redactQuery), including the names the chain's auth plugins read.
 */
const redactorByChain = new WeakMap<PluginChain, (uri: string) => string>();
const redactDefault = (uri: string): string => redactQuery(uri, null);

/** The chain of the previous line and its redactor: consecutive lines mostly come from one route. */
let lastChain: PluginChain | null = null;
let lastRedactor = redactDefault;

function redactorOf(chain: PluginChain | null): (uri: string) => string {
  if (chain === null) return redactDefault;
  if (chain === lastChain) return lastRedactor;
  let r = redactorByChain.get(chain);
  if (r === undefined) {
    const extra = chainArgs(chain);
    r = extra === null ? redactDefault : (uri: string) => redactQuery(uri, extra);
    redactorByChain.set(chain, r);
  }
  lastChain = chain;
  lastRedactor = r;
  return r;
}

export interface AccessLogOptions {
  /** stdout or a file path. */
  path: string;
  /** An nginx log_format string (APISIX access_log_format); absent: one JSON line per request. */
  format?: string | undefined;
  escape?: AccessLogEscape | undefined;
  /** Bytes gathered before a write (APISIX access_log_buffer); absent: LineWriter's default, 16384. */
  buffer?: number | undefined;
}

/**
 * The access log of `conf`: a relative path resolves against the directory above config.yaml's (APISIX's
 * prefix, where its default `logs/access.log` lives beside `conf/`). On a terminal, stdout gets, unless
 * configured otherwise, APISIX's default nginx-style line instead of JSON and no buffer, for people reading it.
 */
export function accessLogOptions(conf: LocalConfig, configFile: string, stdoutIsTty = process.stdout.isTTY === true): AccessLogOptions {
  const a = conf.switchyard.access_log;
  const dest = a.path === 'stdout' ? 'stdout' : path.resolve(path.dirname(path.dirname(path.resolve(configFile))), a.path);
  const tty = dest === 'stdout' && stdoutIsTty;
  const format = a.format ?? (tty ? APISIX_ACCESS_LOG_FORMAT : undefined);
  return { path: dest, format, escape: a.format_escape, buffer: a.buffer ?? (tty ? 0 : undefined) };
}

export class AccessLog {
  private readonly dest: LineWriter;
  private readonly format: AccessLogFormat | null;
  /** Reused for every line of a format (lines are built synchronously, one at a time). */
  private readonly input: LineInput = { ctx: null as unknown as RequestContext, bytes: 0, redact: redactDefault };

  constructor(opts: AccessLogOptions) {
    this.format = opts.format === undefined ? null : AccessLogFormat.compile(opts.format, opts.escape ?? 'default');
    this.dest = new LineWriter(opts.path, opts.buffer);
  }

  /**
   * The line for one exchange (exported shape for tests: JSON, one line, pino-compatible). `chain`: the
   * route's plugin chain, whose auth plugins' query argument names are redacted too.
   */
  static line(ctx: RequestContext, bytes: number, chain: PluginChain | null = null): string {
    // hot path
    const rq = ctx.request;
    const redact = redactorOf(chain);
    const us = Math.max(0, Math.round(Number(process.hrtime.bigint() - ctx.startNs) / 1000));
    let l = `{"level":30,"time":"${isoTime()}","remote_addr":${str(ctx.peerAddr)},"host":${str(rq.host)},"request_method":${str(rq.method)}` +
      `,"request_uri":${str(redact(ctx.rawUri))},"server_protocol":"HTTP/${rq.httpVersion}","status":${ctx.response.status}` +
      `,"body_bytes_sent":${bytes},"request_time":${decimal(us, 6)}`;
    const referer = ctx.headerValue('referer');
    if (referer !== undefined) l += `,"http_referer":${str(redact(referer))}`;
    const ua = ctx.headerValue('user-agent');
    if (ua !== undefined) l += `,"http_user_agent":${str(ua)}`;
    if (ctx.upstreamAddr !== undefined) l += `,"upstream_addr":${str(ctx.upstreamAddr)}`;
    if (ctx.upstreamStatus !== undefined) l += `,"upstream_status":${ctx.upstreamStatus}`;
    if (ctx.upstreamLatencyMs !== undefined) l += `,"upstream_response_time":${decimal(Math.max(0, Math.round(ctx.upstreamLatencyMs)), 3)}`;
    if (ctx.routeId) l += `,"route_id":${str(ctx.routeId)}`;
    if (ctx.serviceId !== undefined) l += `,"service_id":${str(ctx.serviceId)}`;
    const consumer = ctx.consumer?.username;
    if (consumer !== undefined) l += `,"consumer_name":${str(consumer)}`;
    return `${l}}\n`;
  }

  /** The line this log writes for one exchange (JSON, or the configured format). */
  lineFor(ctx: RequestContext, bytes: number, chain: PluginChain | null = null): string {
    // hot path
    const format = this.format;
    if (format === null) return AccessLog.line(ctx, bytes, chain);
    const input = this.input;
    input.ctx = ctx;
    input.bytes = bytes;
    input.redact = redactorOf(chain);
    const l = format.line(input);
    input.ctx = null as unknown as RequestContext;
    return l;
  }

  write(ctx: RequestContext, bytes: number, chain: PluginChain | null = null): void {
    this.dest.write(this.lineFor(ctx, bytes, chain));
  }

  /** Shutdown: resolves once the buffered lines are written. */
  flush(): Promise<void> {
    return this.dest.flush();
  }
}
