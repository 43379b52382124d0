import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aiProxyPlugin as def } from '../../src/plugin/builtin/ai-proxy.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { nowMs, startLlmFixture, type LlmFixture } from '../helpers/llm-fixture.ts';
import { confError } from '../plugin/helpers.ts';

const SECRET = 'sk-test-4242-never-echo';

function chat(extra: Record<string, unknown> = {}) {
  return JSON.stringify({ model: 'client-model', messages: [{ role: 'user', content: 'hi' }], ...extra });
}

describe('ai-proxy', () => {
  let gw: TestGateway;
  let llm: LlmFixture;

  beforeAll(async () => {
    gw = await startTestGateway();
    llm = await startLlmFixture('llm');
    const conf = (extra: Record<string, unknown> = {}) => ({
      provider: 'openai-compatible',
      auth: { header: { Authorization: `Bearer ${SECRET}` } },
      override: { endpoint: `${llm.endpoint}/v1/chat/completions` },
      ...extra,
    });
    await gw.put('/routes/chat', { uri: '/chat', plugins: { 'ai-proxy': conf({ options: { model: 'gpt-x', temperature: 0.5 } }) } });
    await gw.put('/routes/embed', {
      uri: '/embed',
      plugins: { 'ai-proxy': { provider: 'openai-compatible', auth: { query: { key: SECRET } }, override: { endpoint: llm.endpoint } } },
    });
    await gw.put('/routes/slow', { uri: '/slow', plugins: { 'ai-proxy': conf({ timeout: 200 }) } });
    await gw.put('/routes/meta', { uri: '/meta', plugins: { 'ai-proxy': conf({ _meta: { error_response: { message: 'provider refused' } } }) } });
  });
  afterAll(async () => {
    await gw?.close();
    await llm?.close();
  });

  it('validates confs as APISIX', () => {
    expect(confError(def, { provider: 'openai', auth: { header: { Authorization: 'Bearer x' } } })).toBeNull();
    expect(confError(def, { provider: 'openai' })).not.toBeNull();
    expect(confError(def, { provider: 'nope', auth: {} })).not.toBeNull();
    expect(confError(def, { provider: 'openai-compatible', auth: {} })).toMatch(/override.endpoint/);
    expect(confError(def, { provider: 'openai', auth: {}, timeout: 0 })).not.toBeNull();
  });

  it('proxies a chat completion with auth injected, options overridden, and the key never echoed', async () => {
    llm.requests.length = 0;
    const r = await fetch(`${gw.url}/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat() });
    expect(r.status).toBe(200);
    const text = await r.text();
    expect(text).not.toContain(SECRET);
    for (const [, v] of r.headers) expect(v).not.toContain(SECRET);
    const body = JSON.parse(text);
    expect(body.choices[0].message.content).toBe('Hello from llm');
    expect(body.usage.total_tokens).toBe(10);
    expect(llm.requests).toHaveLength(1);
    const seen = llm.requests[0]!;
    expect(seen.url).toBe('/v1/chat/completions');
    expect(seen.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(seen.body.model).toBe('gpt-x');
    expect(seen.body.temperature).toBe(0.5);
    expect(seen.body.messages).toEqual([{ role: 'user', content: 'hi' }]);
  });

  it('puts auth.query on the URL and keeps the provider path for a bare endpoint (embeddings)', async () => {
    llm.requests.length = 0;
    const r = await fetch(`${gw.url}/embed`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: 'x', model: 'e' }) });
    expect(r.status).toBe(200);
    expect(((await r.json()) as any).data[0].embedding).toEqual([0.1, 0.2]);
    expect(llm.requests[0]!.url).toBe(`/v1/embeddings?key=${SECRET}`);
  });

  it('rejects non-JSON and unknown request shapes', async () => {
    let r = await fetch(`${gw.url}/chat`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
    expect(r.status).toBe(400);
    expect(await r.text()).toBe('unsupported content-type: text/plain, only application/json is supported');
    r = await fetch(`${gw.url}/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"foo":1}' });
    expect(r.status).toBe(400);
    r = await fetch(`${gw.url}/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
    expect(r.status).toBe(400);
  });

  it('relays provider errors and answers 504 on timeout', async () => {
    llm.mode = 429;
    let r = await fetch(`${gw.url}/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat() });
    expect(r.status).toBe(429);
    expect(((await r.json()) as any).error.message).toBe('llm says 429');
    llm.mode = 'ok';
    llm.headerDelayMs = 600;
    r = await fetch(`${gw.url}/slow`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat() });
    expect(r.status).toBe(504);
    await r.text();
    llm.headerDelayMs = 0;
  });

  it('streams SSE without buffering: the first event reaches the client before the provider sends the last', async () => {
    llm.eventDelayMs = 150;
    llm.words = ['a', 'b', 'c', 'd'];
    llm.requests.length = 0;
    const r = await fetch(`${gw.url}/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat({ stream: true }) });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/event-stream');
    const reader = r.body!.getReader();
    let text = '';
    let firstAt = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (firstAt === 0) firstAt = nowMs();
      text += Buffer.from(value).toString();
    }
    expect(llm.requests[0]!.body.stream_options).toEqual({ include_usage: true });
    expect(text).toContain('"usage"');
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    const lastSent = llm.eventTimes[llm.eventTimes.length - 1]!;
    // Measured order: a buffering proxy could not deliver anything before the provider's last event.
    expect(firstAt).toBeGreaterThan(0);
    expect(firstAt).toBeLessThan(lastSent);
    llm.eventDelayMs = 0;
    llm.words = ['Hello', ' from', ' llm'];
  });

  it('_meta.error_response replaces a relayed provider 4xx and releases the provider response at once', async () => {
    // A 400 is relayed as a stream (no fallback status); its body arrives slowly, so only a cancelled relay
    // shows as aborted in the fixture.
    llm.mode = 400;
    llm.eventDelayMs = 1500;
    const before = llm.aborted;
    const r = await fetch(`${gw.url}/meta`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat() });
    expect(r.status).toBe(400);
    expect(await r.json()).toEqual({ message: 'provider refused' });
    await llm.waitAborted(before + 1, 1000);
    llm.mode = 'ok';
    llm.eventDelayMs = 0;
  });

  it('a client that leaves before the provider answers aborts the provider request', async () => {
    // JSON answer after a long head delay: only a cancelled provider request shows as aborted in the fixture
    // (an answer written after the delay would end normally).
    llm.headerDelayMs = 4000;
    llm.requests.length = 0;
    const before = llm.aborted;
    const req = http.request(`${gw.url}/chat`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    req.on('error', () => undefined);
    req.end(chat());
    const until = Date.now() + 3000;
    while (llm.requests.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(llm.requests).toHaveLength(1);
    req.destroy();
    await llm.waitAborted(before + 1, 2000);
    expect(llm.aborted).toBe(before + 1);
    llm.headerDelayMs = 0;
  });

  it('a client that leaves mid-stream aborts the provider request', async () => {
    llm.eventDelayMs = 300;
    llm.words = ['a', 'b', 'c', 'd', 'e', 'f'];
    const before = llm.aborted;
    await new Promise<void>((resolve, reject) => {
      const req = http.request(`${gw.url}/chat`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.setTimeout(3000, () => reject(new Error('no first event')));
      req.end(chat({ stream: true }));
    });
    await llm.waitAborted(before + 1);
    expect(llm.aborted).toBe(before + 1);
    llm.eventDelayMs = 0;
    llm.words = ['Hello', ' from', ' llm'];
  });
});
