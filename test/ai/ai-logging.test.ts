// ai-proxy / ai-proxy-multi `logging` (summaries, payloads) reach every logger plugin's entry, as APISIX's
// log-util adds llm_summary / llm_request / llm_response_text: http-logger POSTs them to a receiver here, for
// JSON and SSE answers, with the full entry and with a log_format.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startLlmFixture, type LlmFixture } from '../helpers/llm-fixture.ts';
import { waitFor } from '../helpers/proc.ts';

interface Receiver {
  readonly url: string;
  /** Entries received, by request path of the logger (`/full`, `/fmt`...). */
  readonly got: Map<string, any[]>;
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const got = new Map<string, any[]>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      const list = got.get(req.url ?? '') ?? [];
      for (const e of Array.isArray(body) ? body : [body]) list.push(e);
      got.set(req.url ?? '', list);
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    got,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const chat = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: 'client-model', messages: [{ role: 'user', content: 'say hello' }], ...extra });

describe('LLM fields in logger entries', () => {
  let gw: TestGateway;
  let llm: LlmFixture;
  let rx: Receiver;

  beforeAll(async () => {
    llm = await startLlmFixture('llm');
    rx = await startReceiver();
    gw = await startTestGateway();
    const logger = (path: string, extra: Record<string, unknown> = {}) => ({ uri: `${rx.url}${path}`, batch_max_size: 1, ...extra });
    const proxy = (logging: Record<string, unknown>) => ({
      provider: 'openai-compatible',
      auth: { header: { Authorization: 'Bearer k' } },
      options: { model: 'gpt-x' },
      override: { endpoint: `${llm.endpoint}/v1/chat/completions` },
      logging,
    });
    await gw.put('/routes/both', {
      uri: '/both',
      plugins: { 'ai-proxy': proxy({ summaries: true, payloads: true }), 'http-logger': logger('/both') },
    });
    await gw.put('/routes/summ', {
      uri: '/summ',
      plugins: {
        'ai-proxy-multi': {
          instances: [
            { name: 'only', provider: 'openai-compatible', weight: 1, auth: { header: { Authorization: 'Bearer k' } }, override: { endpoint: `${llm.endpoint}/v1/chat/completions` } },
          ],
          logging: { summaries: true },
        },
        'http-logger': logger('/summ', { log_format: { host: '$host', model: '$llm_model' } }),
      },
    });
    await gw.put('/routes/off', { uri: '/off', plugins: { 'ai-proxy': proxy({}), 'http-logger': logger('/off') } });
  });
  afterAll(async () => {
    await gw?.close();
    await llm?.close();
    await rx?.close();
  });

  const post = async (path: string, body: string) => {
    const r = await fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    return { status: r.status, text: await r.text() };
  };
  const entry = async (path: string, n: number) => {
    await waitFor(() => (rx.got.get(path)?.length ?? 0) >= n, 5000, 10);
    return rx.got.get(path)![n - 1];
  };

  it('a JSON answer: llm_summary, llm_request and llm_response_text in the full entry', async () => {
    llm.usage = { prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 };
    const r = await post('/both', chat());
    expect(r.status).toBe(200);
    const e = await entry('/both', 1);
    expect(e.route_id).toBe('both');
    expect(e.llm_summary).toMatchObject({ request_model: 'client-model', model: 'gpt-x', prompt_tokens: 11, completion_tokens: 3, total_tokens: 14, stream: false });
    expect(typeof e.llm_summary.duration).toBe('number');
    expect(e.llm_request).toEqual({ messages: [{ role: 'user', content: 'say hello' }], stream: false });
    expect(e.llm_response_text).toEqual({ content: 'Hello from llm' });
  });

  it('an SSE answer: the text is assembled from the deltas and the usage chunk counted', async () => {
    llm.usage = { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 };
    const r = await post('/both', chat({ stream: true }));
    expect(r.status).toBe(200);
    expect(r.text).toContain('data: [DONE]');
    const e = await entry('/both', 2);
    expect(e.llm_summary).toMatchObject({ prompt_tokens: 5, completion_tokens: 3, total_tokens: 8, stream: true });
    expect(e.llm_request.stream).toBe(true);
    expect(e.llm_response_text).toEqual({ content: 'Hello from llm' });
  });

  it('ai-proxy-multi summaries go into a log_format entry too, without payloads', async () => {
    llm.usage = { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 };
    expect((await post('/summ', chat({ stream: true }))).status).toBe(200);
    const e = await entry('/summ', 1);
    expect(e.host).toBe('127.0.0.1');
    expect(e.model).toBe('client-model');
    expect(e.llm_summary).toMatchObject({ request_model: 'client-model', prompt_tokens: 2, completion_tokens: 3, total_tokens: 5, stream: true });
    expect(e.llm_request).toBeUndefined();
    expect(e.llm_response_text).toBeUndefined();
  });

  it('without logging options the entry has no LLM fields', async () => {
    expect((await post('/off', chat())).status).toBe(200);
    const e = await entry('/off', 1);
    expect(e.route_id).toBe('off');
    expect(e.llm_summary).toBeUndefined();
    expect(e.llm_request).toBeUndefined();
  });
});
