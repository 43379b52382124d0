// Sends one request to one provider instance and relays its answer (APISIX ai-proxy/base.lua before_proxy and
// ai-providers/base.lua): the client's JSON body with the instance's model options and overrides, the client's
// headers (minus host/length/encoding/hop-by-hop) with the configured auth headers on top, auth query args.
// Provider errors (429, 5xx, fallback_http_statuses) and transport failures come back as values so
// ai-proxy-multi can fall back; anything else is relayed as a stream, chunk by chunk, while usage and the first
// token time are recorded on the side. Credentials never reach a log line.
import { Agent, request, type Dispatcher } from 'undici';
import type { JsonObject } from '../../../config/resources.ts';
import type { Logger } from '../../../observability/logger.ts';
import type { HttpContext, HeaderMap } from '../../context.ts';
import type { PluginResponse } from '../../plugin.ts';
import { ActiveLlmCall } from './active.ts';
import { supported, urlFor, type Target } from './providers.ts';
import { SseWatcher } from './sse.ts';
import { recordEstimatedUsage, recordFirstToken, recordUsage, type AiState } from './state.ts';

/** Transport settings of one plugin conf (timeout and keepalive fields of the schema). */
export class AiClient {
  readonly agent: Agent;
  readonly keepalive: boolean;
  readonly timeoutMs: number;
  readonly maxStreamMs: number | null;
  readonly maxBytes: number | null;
  readonly collectText: boolean;

  constructor(conf: JsonObject) {
    const timeout = (conf.timeout as number | undefined) ?? 30000;
    this.keepalive = conf.keepalive !== false;
    this.timeoutMs = timeout;
    this.agent = new Agent({
      keepAliveTimeout: (conf.keepalive_timeout as number | undefined) ?? 60000,
      connections: (conf.keepalive_pool as number | undefined) ?? 30,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connect: { timeout, rejectUnauthorized: conf.ssl_verify !== false },
    });
    this.maxStreamMs = (conf.max_stream_duration_ms as number | undefined) ?? null;
    this.maxBytes = (conf.max_response_bytes as number | undefined) ?? null;
    this.collectText = (conf.logging as JsonObject | undefined)?.payloads === true;
  }

  close(): void {
    void this.agent.close().catch(() => undefined);
  }
}

export type Attempt =
  | { readonly ok: true; readonly response: PluginResponse }
  | {
      readonly ok: false;
      readonly status: number;
      /** The provider's error answer (APISIX returns it when no fallback happens). */
      readonly response: PluginResponse;
      readonly elapsedMs: number;
    };

const TIMED_OUT = new Error('timeout');
/** nginx's status for a client that closed the connection (never sent: the client is gone). */
const CLIENT_GONE = 499;

const DROP = new Set([
  'host', 'content-length', 'accept-encoding', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding',
  'te', 'trailer', 'upgrade', 'expect', 'http2-settings',
]);

function forwardHeaders(client: HeaderMap, auth: Readonly<Record<string, string>>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in client) {
    const v = client[name];
    if (v === undefined || name.charCodeAt(0) === 58 || DROP.has(name)) continue;
    out[name] = v;
  }
  for (const name in auth) out[name] = auth[name]!;
  out['content-type'] = 'application/json';
  return out;
}

function isObj(v: unknown): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** APISIX ai-proxy/merge.lua: objects merge recursively; arrays and scalars replace only when forced or absent. */
function deepMerge(into: JsonObject, patch: JsonObject, force: boolean): void {
  for (const k in patch) {
    const p = patch[k];
    const cur = into[k];
    if (isObj(p) && isObj(cur)) deepMerge(cur, p, force);
    else if (force || cur === undefined) into[k] = structuredClone(p) as JsonObject[string];
  }
}

/** The body sent to the instance (APISIX build_body). */
export function bodyFor(st: AiState, t: Target, override: JsonObject | null): JsonObject {
  const body = structuredClone(st.body);
  if (st.stream) body.stream_options = { include_usage: true };
  if (t.options !== null) for (const k in t.options) body[k] = t.options[k]!;
  if (t.maxTokens !== null && st.protocol === 'openai-chat') {
    body[t.def.maxTokens] = t.maxTokens;
    if (t.def.maxTokens === 'max_completion_tokens') delete body.max_tokens;
  }
  const patches = override?.request_body;
  if (isObj(patches) && isObj(patches[st.protocol])) {
    deepMerge(body, patches[st.protocol] as JsonObject, override!.request_body_force_override === true);
  }
  if (t.def.removeModel === true) delete body.model;
  return body;
}

function failure(status: number, started: number, body?: Buffer, contentType?: string): Attempt {
  const response: PluginResponse =
    body === undefined ? { status } : { status, body, headers: contentType === undefined ? undefined : { 'content-type': contentType } };
  return { ok: false, status, response, elapsedMs: Date.now() - started };
}

function isTimeout(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return code.endsWith('TIMEOUT') || /time(d)? ?out/i.test((err as Error).message ?? '');
}

export async function callInstance(
  ctx: HttpContext,
  st: AiState,
  t: Target,
  client: AiClient,
  override: JsonObject | null,
  fallbackStatuses: ReadonlySet<number> | null,
  logger: Logger,
): Promise<Attempt> {
  const url = urlFor(t, st.protocol);
  if (url === null) {
    return {
      ok: false,
      status: 400,
      elapsedMs: 0,
      response: { status: 400, body: `provider ${t.provider} does not support ${st.protocol} protocol (supported: ${supported(t)})` },
    };
  }
  const body = bodyFor(st, t, override);
  const model = (t.options?.model as string | undefined) ?? (st.body.model as string | undefined);
  if (typeof model === 'string') ctx.vars.set('llm_model', model);
  ctx.vars.set('llm_stream', st.stream ? 'true' : 'false');
  st.startMs = Date.now();
  st.ttftMs = null;
  const gone = ctx.clientSignal;
  if (gone.aborted) return failure(CLIENT_GONE, st.startMs);
  const ac = new AbortController();
  // undici's own headersTimeout has a coarse clock; the conf's timeout (ms) is enforced here up to the head.
  const timer = setTimeout(() => ac.abort(TIMED_OUT), client.timeoutMs);
  const active = new ActiveLlmCall(ctx, st);
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, {
      method: 'POST',
      headers: forwardHeaders(ctx.request.headers, t.authHeaders),
      body: JSON.stringify(body),
      dispatcher: client.agent,
      // A client that leaves before the provider answers cancels the provider request at once.
      signal: AbortSignal.any([ac.signal, gone]),
      reset: !client.keepalive,
    });
  } catch (err) {
    active.end();
    // Not a provider failure: ai-proxy-multi must not fall back to another instance for a client that left.
    if (gone.aborted) return failure(CLIENT_GONE, st.startMs);
    // The URL carries auth query args: log the instance, never the URL.
    logger.warn({ instance: t.name, err: (err as Error).message }, 'failed to send request to LLM server');
    return failure(err === TIMED_OUT || isTimeout(err) ? 504 : 500, st.startMs);
  } finally {
    clearTimeout(timer);
  }
  const status = res.statusCode;
  const ct = res.headers['content-type'];
  const contentType = Array.isArray(ct) ? ct[0] : ct;
  if (status === 429 || status >= 500 || (fallbackStatuses !== null && fallbackStatuses.has(status))) {
    let errBody: Buffer | undefined;
    try {
      errBody = Buffer.from(await res.body.arrayBuffer());
    } catch {
      errBody = undefined;
    }
    active.end();
    st.ttftMs = Date.now() - st.startMs;
    ctx.vars.set('llm_time_to_first_token', st.ttftMs);
    return failure(status, st.startMs, errBody, contentType);
  }
  const sse = contentType !== undefined && contentType.includes('text/event-stream');
  const headers: Record<string, string> = {};
  if (contentType !== undefined) headers['content-type'] = contentType;
  const relay = new Relay(ctx, st, res.body, ac, client, sse, active);
  return {
    ok: true,
    response: { status, headers, stream: relay, cancel: (reason: Error) => relay.cancel(reason) },
  };
}

/** The provider's body as an async iterable: each chunk goes out as it arrives; usage is read on the side. */
class Relay implements AsyncIterable<Buffer> {
  readonly #ctx: HttpContext;
  readonly #st: AiState;
  readonly #body: AsyncIterable<Buffer>;
  readonly #ac: AbortController;
  readonly #client: AiClient;
  readonly #sse: boolean;
  readonly #active: ActiveLlmCall;
  /** Set once the relay started; read by cancel() for the usage estimate. */
  #watcher: SseWatcher | null = null;

  constructor(ctx: HttpContext, st: AiState, body: AsyncIterable<Buffer>, ac: AbortController, client: AiClient, sse: boolean, active: ActiveLlmCall) {
    this.#ctx = ctx;
    this.#st = st;
    this.#body = body;
    this.#ac = ac;
    this.#client = client;
    this.#sse = sse;
    this.#active = active;
  }

  /**
   * The client left or the body was replaced: the provider call ends now, even if nobody iterates again. The
   * usage chunk will never come, so the tokens are estimated here, before the log phase that charges them.
   */
  cancel(reason: Error): void {
    this.#ac.abort(reason);
    this.#active.end();
    recordEstimatedUsage(this.#ctx, this.#st, this.#watcher?.deltaChars ?? 0);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    const ctx = this.#ctx;
    const st = this.#st;
    const maxBytes = this.#client.maxBytes;
    const watcher = this.#sse
      ? new SseWatcher({ onUsage: (u) => recordUsage(ctx, st, u), onText: (s) => (st.responseText += s) }, this.#client.collectText)
      : null;
    this.#watcher = watcher;
    const parts: Buffer[] | null = this.#sse ? null : [];
    let bytes = 0;
    const ms = this.#client.maxStreamMs;
    const timer = ms === null ? null : setTimeout(() => this.#ac.abort(new Error('max_stream_duration_ms exceeded')), ms);
    try {
      for await (const chunk of this.#body) {
        recordFirstToken(ctx, st);
        bytes += chunk.length;
        if (maxBytes !== null && bytes > maxBytes) throw new Error('max_response_bytes exceeded');
        if (watcher !== null) watcher.push(chunk);
        else parts!.push(chunk);
        yield chunk;
      }
      ctx.vars.set('apisix_upstream_response_time', Date.now() - st.startMs);
      if (watcher !== null) watcher.end();
      else this.#json(Buffer.concat(parts!));
    } finally {
      if (timer !== null) clearTimeout(timer);
      this.#active.end();
      // A stream that ended (or failed) without a usage object still gets an estimate (see recordEstimatedUsage).
      recordEstimatedUsage(ctx, st, watcher?.deltaChars ?? 0);
    }
  }

  #json(raw: Buffer): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      return;
    }
    if (parsed === null || typeof parsed !== 'object') return;
    const o = parsed as { usage?: unknown; choices?: { message?: { content?: unknown } }[] };
    recordUsage(this.#ctx, this.#st, o.usage);
    if (this.#client.collectText && Array.isArray(o.choices)) {
      this.#st.responseText = o.choices
        .map((c) => c?.message?.content)
        .filter((c): c is string => typeof c === 'string')
        .join(' ');
    }
  }
}
