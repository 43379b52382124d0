// An OpenAI-compatible LLM server for tests (node:http on a random loopback port): chat completions as JSON or
// SSE (stream=true: one event per word, then a usage chunk when stream_options.include_usage is set, then
// [DONE]), embeddings, and failure modes (429, 500, delayed headers). It records what it received and when it
// wrote each SSE event, and notices clients (the gateway) that hang up before the answer ends.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LlmRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: any;
}

export interface LlmFixture {
  readonly port: number;
  readonly endpoint: string;
  readonly requests: LlmRequest[];
  /** 'ok' answers; 400/429/500 answer that status with an OpenAI error body (split by eventDelayMs if set). */
  mode: 'ok' | 400 | 429 | 500;
  /** Delay before the response head. */
  headerDelayMs: number;
  /** Delay between SSE events. */
  eventDelayMs: number;
  /** Words of the answer (one SSE event each). */
  words: string[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  /** hrtime (ms) at which each SSE event of the latest stream was written. */
  eventTimes: number[];
  /** Requests whose client went away before the answer ended. */
  aborted: number;
  waitAborted(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startLlmFixture(name = 'fixture'): Promise<LlmFixture> {
  const waiters: (() => void)[] = [];
  const fx: LlmFixture = {
    port: 0,
    endpoint: '',
    requests: [],
    mode: 'ok',
    headerDelayMs: 0,
    eventDelayMs: 0,
    words: ['Hello', ' from', ` ${name}`],
    usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 },
    eventTimes: [],
    aborted: 0,
    async waitAborted(n, timeoutMs = 3000) {
      const until = Date.now() + timeoutMs;
      while (fx.aborted < n) {
        if (Date.now() > until) throw new Error(`fixture saw ${fx.aborted} aborted requests, wanted ${n}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
    },
    close: () => new Promise((r) => server.close(() => r())),
  };

  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: any = null;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      body = null;
    }
    fx.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
    let finished = false;
    res.on('close', () => {
      if (finished) return;
      fx.aborted++;
      for (const w of waiters.splice(0)) w();
    });
    if (fx.headerDelayMs > 0) await sleep(fx.headerDelayMs);
    if (fx.mode !== 'ok') {
      const status = fx.mode;
      res.writeHead(status, { 'content-type': 'application/json' });
      const text = JSON.stringify({ error: { message: `${name} says ${status}`, type: status === 429 ? 'rate_limit' : 'server_error' } });
      if (fx.eventDelayMs > 0) {
        res.write(text.slice(0, 10));
        await sleep(fx.eventDelayMs);
        if (res.destroyed) return;
        res.end(text.slice(10));
      } else {
        res.end(text);
      }
      finished = true;
      return;
    }
    const model = typeof body?.model === 'string' ? body.model : 'fixture-model';
    if (body?.input !== undefined) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2] }], model, usage: { prompt_tokens: 4, total_tokens: 4 } }));
      finished = true;
      return;
    }
    if (body?.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      fx.eventTimes = [];
      const send = (data: string) => {
        if (res.destroyed) return false;
        res.write(`data: ${data}\n\n`);
        fx.eventTimes.push(nowMs());
        return true;
      };
      for (let i = 0; i < fx.words.length; i++) {
        if (i > 0 && fx.eventDelayMs > 0) await sleep(fx.eventDelayMs);
        const chunk = { id: 'c1', object: 'chat.completion.chunk', model, choices: [{ index: 0, delta: { content: fx.words[i] }, finish_reason: null }] };
        if (!send(JSON.stringify(chunk))) return;
      }
      if (fx.eventDelayMs > 0) await sleep(fx.eventDelayMs);
      if (body?.stream_options?.include_usage === true) {
        if (!send(JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model, choices: [], usage: fx.usage }))) return;
      }
      if (!send('[DONE]')) return;
      finished = true;
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        id: 'chatcmpl-1',
        object: 'chat.completion',
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: fx.words.join('') }, finish_reason: 'stop' }],
        usage: fx.usage,
      }),
    );
    finished = true;
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  (fx as { port: number }).port = port;
  (fx as { endpoint: string }).endpoint = `http://127.0.0.1:${port}`;
  return fx;
}
