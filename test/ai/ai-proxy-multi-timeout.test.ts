// ai-proxy-multi falls back when an instance times out: the first instance's provider holds its response head
// longer than the plugin's timeout, the gateway gives up on it (cancelling that provider request) and the
// client gets the next instance's answer; without http_5xx in fallback_strategy the client gets 504.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startLlmFixture, type LlmFixture } from '../helpers/llm-fixture.ts';

const body = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] });
const post = (url: string) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

describe('ai-proxy-multi fallback on a provider timeout', () => {
  let gw: TestGateway;
  let slow: LlmFixture;
  let fast: LlmFixture;

  const instance = (name: string, fx: LlmFixture, priority: number) => ({
    name,
    provider: 'openai-compatible',
    weight: 1,
    priority,
    auth: { header: { Authorization: `Bearer key-${name}` } },
    override: { endpoint: `${fx.endpoint}/v1/chat/completions` },
  });

  beforeAll(async () => {
    gw = await startTestGateway();
    [slow, fast] = await Promise.all([startLlmFixture('slow'), startLlmFixture('fast')]);
    // The timeout (300 ms) is far below the slow provider's head delay (5 s): load cannot turn one into the other.
    slow.headerDelayMs = 5000;
    const instances = [instance('slow', slow, 10), instance('fast', fast, 0)];
    await gw.put('/routes/fallback', { uri: '/fallback', plugins: { 'ai-proxy-multi': { timeout: 300, fallback_strategy: ['http_5xx'], instances } } });
    await gw.put('/routes/strict', { uri: '/strict', plugins: { 'ai-proxy-multi': { timeout: 300, fallback_strategy: ['http_429'], instances } } });
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.all([slow?.close(), fast?.close()]);
  });

  it('the client gets the next instance answer and the timed-out provider request is cancelled', async () => {
    const abortedBefore = slow.aborted;
    const r = await post(`${gw.url}/fallback`);
    expect(r.status).toBe(200);
    expect(((await r.json()) as any).choices[0].message.content).toBe('Hello from fast');
    expect(slow.requests).toHaveLength(1);
    expect(fast.requests).toHaveLength(1);
    expect(fast.requests[0]!.headers.authorization).toBe('Bearer key-fast');
    await slow.waitAborted(abortedBefore + 1);
  });

  it('without http_5xx in fallback_strategy a timeout answers 504 and the next instance is not tried', async () => {
    const before = fast.requests.length;
    const r = await post(`${gw.url}/strict`);
    expect(r.status).toBe(504);
    await r.text();
    expect(fast.requests.length).toBe(before);
  });
});
