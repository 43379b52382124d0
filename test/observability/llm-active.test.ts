// apisix_llm_active_connections counts a provider call while it is open: from the request to the LLM until its
// answer has ended (streamed SSE included), failed, or been abandoned by the client. The provider here is a
// real HTTP server the test drives step by step (it holds its response head, then each SSE event, until the
// test lets it go), so every scrape happens at a known point of the call without timing assumptions.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/proc.ts';
import { scrape, value } from './prom-text.ts';

/** A provider call in progress: the test decides when the head and each later step go out. */
interface HeldCall {
  readonly stream: boolean;
  readonly res: http.ServerResponse;
  closed: boolean;
}

describe('llm_active_connections follows the provider call', () => {
  let gw: TestGateway;
  let provider: http.Server;
  let metricsUrl = '';
  const calls: HeldCall[] = [];

  const gauge = async (requestType: string) => value(await scrape(metricsUrl), 'apisix_llm_active_connections', { route_id: 'llm', request_type: requestType });
  const chat = (stream: boolean, signal?: AbortSignal) =>
    fetch(`${gw.url}/llm`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', stream, messages: [{ role: 'user', content: 'hi' }] }),
      signal,
    });
  const sse = (data: string) => `data: ${data}\n\n`;
  const chunk = (word: string) => sse(JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { content: word } }] }));

  beforeAll(async () => {
    provider = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const call: HeldCall = { stream: (JSON.parse(body) as { stream?: boolean }).stream === true, res, closed: false };
        res.on('close', () => (call.closed = true));
        calls.push(call);
      });
    });
    await new Promise<void>((r) => provider.listen(0, '127.0.0.1', r));
    gw = await startTestGateway();
    metricsUrl = `http://127.0.0.1:${(gw.config.plugin_attr.prometheus!.export_addr as { port: number }).port}/apisix/prometheus/metrics`;
    const endpoint = `http://127.0.0.1:${(provider.address() as AddressInfo).port}/v1/chat/completions`;
    await gw.put('/routes/llm', {
      uri: '/llm',
      plugins: { prometheus: {}, 'ai-proxy': { provider: 'openai-compatible', auth: { header: { Authorization: 'Bearer k' } }, override: { endpoint } } },
    });
  });

  afterAll(async () => {
    await gw?.close();
    provider?.closeAllConnections();
    await new Promise<void>((r) => (provider ? provider.close(() => r()) : r()));
  });

  it('a streamed answer: 1 before the provider answers its head, 1 mid-stream, 0 once the stream ended', async () => {
    const pending = chat(true);
    await waitFor(() => calls.length === 1, 10_000);
    const call = calls[0]!;
    // The provider has the request and has not answered anything yet.
    expect(await gauge('ai_stream')).toBe(1);

    call.res.writeHead(200, { 'content-type': 'text/event-stream' });
    call.res.write(chunk('Hello'));
    const r = await pending;
    expect(r.status).toBe(200);
    const reader = r.body!.getReader();
    const first = await reader.read();
    expect(Buffer.from(first.value!).toString()).toContain('Hello');
    expect(await gauge('ai_stream')).toBe(1);

    call.res.write(chunk(' world'));
    call.res.end(sse('[DONE]'));
    let text = '';
    for (let i = 0; i < 100; i++) {
      const { done, value: v } = await reader.read();
      if (done) break;
      text += Buffer.from(v).toString();
    }
    expect(text).toContain('[DONE]');
    expect(await gauge('ai_stream')).toBe(0);
  });

  it('a JSON answer: 1 while the provider holds its head, 0 after', async () => {
    const pending = chat(false);
    await waitFor(() => calls.length === 2, 10_000);
    expect(await gauge('ai_chat')).toBe(1);
    calls[1]!.res.writeHead(200, { 'content-type': 'application/json' });
    calls[1]!.res.end(JSON.stringify({ id: 'x', object: 'chat.completion', model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' } }] }));
    const r = await pending;
    expect(r.status).toBe(200);
    await r.text();
    expect(await gauge('ai_chat')).toBe(0);
  });

  it('a provider error ends the call: 0 once the 500 is relayed', async () => {
    const pending = chat(false);
    await waitFor(() => calls.length === 3, 10_000);
    expect(await gauge('ai_chat')).toBe(1);
    calls[2]!.res.writeHead(500, { 'content-type': 'application/json' });
    calls[2]!.res.end('{"error":{"message":"down"}}');
    const r = await pending;
    expect(r.status).toBe(500);
    await r.text();
    expect(await gauge('ai_chat')).toBe(0);
  });

  it('a client that leaves mid-stream ends the call: the provider connection closes and the gauge returns to 0', async () => {
    const ac = new AbortController();
    const pending = chat(true, ac.signal);
    await waitFor(() => calls.length === 4, 10_000);
    const call = calls[3]!;
    call.res.writeHead(200, { 'content-type': 'text/event-stream' });
    call.res.write(chunk('partial'));
    const r = await pending;
    await r.body!.getReader().read();
    expect(await gauge('ai_stream')).toBe(1);
    ac.abort();
    await waitFor(() => call.closed, 10_000);
    await expect.poll(() => gauge('ai_stream'), { timeout: 10_000 }).toBe(0);
  });
});
