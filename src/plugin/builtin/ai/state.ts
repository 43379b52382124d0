// Per-request AI state shared by the ai-* plugins through ctx.pluginData ('ai'), and the LLM context variables
// APISIX sets for access logs and metrics (request_type, request_llm_model, llm_model, llm_prompt_tokens,
// llm_completion_tokens, llm_total_tokens, llm_time_to_first_token, llm_stream, apisix_upstream_response_time,
// llm_response_text). Metrics read the same numbers from AiState.usage / ttftMs.
import type { JsonObject } from '../../../config/resources.ts';
import type { HttpContext } from '../../context.ts';
import type { Protocol } from './providers.ts';

export interface TokenUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface AiState {
  /** The parsed request body; prompt plugins edit it in place before ai-proxy sends it. */
  body: JsonObject;
  protocol: Protocol;
  stream: boolean;
  /** APISIX's picked_ai_instance_name ("ai-proxy-<provider>" for ai-proxy, the instance name for multi). */
  instance: string | null;
  /** Counted from the provider's `usage` (JSON) or the streamed usage chunk; null until known. */
  usage: TokenUsage | null;
  /** The provider's usage object as sent (ai-rate-limiting's cost_expr variables). */
  rawUsage: Record<string, unknown> | null;
  /** Start of the current attempt (Date.now()). */
  startMs: number;
  ttftMs: number | null;
  responseText: string;
  /** The request was rejected by ai-rate-limiting (its log phase then counts nothing). */
  rateLimited: boolean;
  /** The proxying plugin's `logging` options (summaries, payloads); null until ai-proxy(-multi) took the request. */
  logging: AiLogging | null;
}

/** ai-proxy / ai-proxy-multi `logging`: what every logger plugin's entry carries (llmLogFields). */
export interface AiLogging {
  readonly summaries: boolean;
  readonly payloads: boolean;
}

/** The `logging` options of a conf, or null when both are off (nothing added to log entries). */
export function aiLoggingOf(conf: JsonObject): AiLogging | null {
  const l = conf.logging;
  if (l === null || typeof l !== 'object' || Array.isArray(l)) return null;
  const summaries = l.summaries === true;
  const payloads = l.payloads === true;
  return summaries || payloads ? { summaries, payloads } : null;
}

export const AI_KEY = 'ai';

export function aiState(ctx: HttpContext): AiState | undefined {
  return ctx.pluginData.get(AI_KEY) as AiState | undefined;
}

/** Reads and parses the body once (APISIX detect_request_type); an error answer on failure. */
export async function detectRequest(ctx: HttpContext, maxBody: number): Promise<AiState | { status: number; body: string | JsonObject }> {
  const existing = aiState(ctx);
  if (existing !== undefined) return existing;
  const ct = ctx.request.headers['content-type'];
  const type = (Array.isArray(ct) ? ct[0] : ct) ?? 'application/json';
  if (!type.startsWith('application/json')) {
    return { status: 400, body: `unsupported content-type: ${type}, only application/json is supported` };
  }
  const cl = Number(ctx.request.headers['content-length'] ?? 0);
  if (cl > maxBody) return { status: 413, body: { message: `request size ${cl} is greater than the maximum size ${maxBody} allowed` } };
  let raw: Buffer;
  try {
    raw = await ctx.request.readBody();
  } catch (err) {
    return { status: 400, body: { message: (err as Error).message } };
  }
  if (raw.length > maxBody) {
    return { status: 413, body: { message: `request size ${raw.length} is greater than the maximum size ${maxBody} allowed` } };
  }
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    return { status: 400, body: { message: `could not get parse JSON request body: ${(err as Error).message}` } };
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { status: 400, body: { message: 'could not get parse JSON request body: not a JSON object' } };
  }
  const obj = body as JsonObject;
  let protocol: Protocol;
  if (Array.isArray(obj.messages)) protocol = 'openai-chat';
  else if (obj.input !== undefined) protocol = 'openai-embeddings';
  else return { status: 400, body: 'no matching AI protocol for the request' };
  const stream = protocol === 'openai-chat' && obj.stream === true;
  const state: AiState = {
    body: obj,
    protocol,
    stream,
    instance: null,
    usage: null,
    rawUsage: null,
    startMs: 0,
    ttftMs: null,
    responseText: '',
    rateLimited: false,
    logging: null,
  };
  ctx.pluginData.set(AI_KEY, state);
  if (typeof obj.model === 'string') ctx.vars.set('request_llm_model', obj.model);
  ctx.vars.set('request_type', stream ? 'ai_stream' : 'ai_chat');
  return state;
}

export function isState(v: AiState | { status: number }): v is AiState {
  return (v as AiState).protocol !== undefined;
}

/** Usage of an OpenAI-style `usage` object (chat or embeddings). */
export function usageOf(u: unknown): TokenUsage | null {
  if (u === null || typeof u !== 'object') return null;
  const o = u as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const prompt = num(o.prompt_tokens);
  const completion = num(o.completion_tokens);
  const total = typeof o.total_tokens === 'number' ? o.total_tokens : prompt + completion;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total };
}

export function recordUsage(ctx: HttpContext, st: AiState, raw: unknown): void {
  const u = usageOf(raw);
  if (u === null) return;
  st.usage = u;
  st.rawUsage = raw as Record<string, unknown>;
  ctx.vars.set('llm_prompt_tokens', u.prompt_tokens);
  ctx.vars.set('llm_completion_tokens', u.completion_tokens);
  ctx.vars.set('llm_total_tokens', u.total_tokens);
}

/** Characters of text in a chat message's content (a string, or parts with `text`). */
function contentChars(content: unknown): number {
  if (typeof content === 'string') return content.length;
  if (!Array.isArray(content)) return 0;
  let n = 0;
  for (const part of content) {
    const t = (part as { text?: unknown } | null)?.text;
    if (typeof t === 'string') n += t.length;
  }
  return n;
}

/**
 * ESTIMATE, not a provider count: tokens as characters / 4 (the rule of thumb for English text with OpenAI's
 * tokenizers), rounded up. Used only when the answer ended without a usage object (the client left mid-stream,
 * so the provider's final usage chunk never came), so token budgets, llm_* metrics and logs still see a value:
 * prompt tokens from the request's messages (or embeddings input), completion tokens from the characters of the
 * deltas relayed before the end. The raw usage carries `estimated: true`.
 */
export function recordEstimatedUsage(ctx: HttpContext, st: AiState, completionChars: number): void {
  if (st.usage !== null) return;
  let promptChars = 0;
  const messages = st.body.messages;
  if (Array.isArray(messages)) {
    for (const m of messages) promptChars += contentChars((m as { content?: unknown } | null)?.content);
  } else {
    const input = st.body.input;
    if (typeof input === 'string') promptChars = input.length;
    else if (Array.isArray(input)) for (const s of input) if (typeof s === 'string') promptChars += s.length;
  }
  const prompt = Math.ceil(promptChars / 4);
  const completion = Math.ceil(completionChars / 4);
  recordUsage(ctx, st, { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, estimated: true });
}

export function recordFirstToken(ctx: HttpContext, st: AiState): void {
  if (st.ttftMs !== null) return;
  st.ttftMs = Date.now() - st.startMs;
  ctx.vars.set('llm_time_to_first_token', st.ttftMs);
}

/**
 * The fields APISIX's log-util adds to every logger plugin's entry (llm_summary with `logging.summaries`,
 * llm_request and llm_response_text with `logging.payloads`), or null for a request ai-proxy(-multi) did not
 * take or whose conf logs neither.
 */
export function llmLogFields(ctx: HttpContext): JsonObject | null {
  const st = aiState(ctx);
  if (st === undefined || st.logging === null) return null;
  return summaryOf(ctx, st, st.logging.payloads, st.logging.summaries);
}

/** APISIX's llm_summary / llm_request / llm_response_text (ai-proxy `logging`), for loggers. */
export function summaryOf(ctx: HttpContext, st: AiState, payloads: boolean, summaries: boolean): JsonObject {
  const out: JsonObject = {};
  if (summaries) {
    out.llm_summary = {
      request_model: (st.body.model as string | undefined) ?? null,
      model: (ctx.vars.get('llm_model') as string | undefined) ?? null,
      duration: st.ttftMs,
      prompt_tokens: st.usage?.prompt_tokens ?? 0,
      completion_tokens: st.usage?.completion_tokens ?? 0,
      total_tokens: st.usage?.total_tokens ?? 0,
      stream: st.stream,
    };
  }
  if (payloads) {
    out.llm_request = { messages: (st.body.messages as JsonObject[] | undefined) ?? (st.body.input as string) ?? null, stream: st.stream };
    out.llm_response_text = { content: st.responseText };
  }
  return out;
}
